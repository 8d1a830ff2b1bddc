"""The physical-limit baseline: a bare aiohttp WebSocket room broadcast, nothing else.

Protocol: the first text frame names the room (answered ``joined``); every later frame is
written, byte for byte and encoded once, to every socket in that room (the sender too).
No auth, no persistence, no per-client queue: what is left is aiohttp's frame parsing and
the kernel's ``send``, the cost any Python WebSocket server on this stack pays.

Run: ``python -m bench.peers.baseline --port 9001``
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from aiohttp import WSMsgType, web

Rooms = defaultdict[str, set[web.WebSocketResponse]]
ROOMS: web.AppKey[Rooms] = web.AppKey("rooms", Rooms)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    rooms = request.app[ROOMS]
    members: set[web.WebSocketResponse] | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            if members is None:
                members = rooms[msg.data]
                members.add(ws)
                await ws.send_str("joined")
                continue
            payload = msg.data.encode()
            for peer in tuple(members):
                await peer.send_frame(payload, WSMsgType.TEXT)
    finally:
        if members is not None:
            members.discard(ws)
    return ws


async def health(_: web.Request) -> web.Response:
    return web.json_response({"message": "alive"})


def create_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = Rooms(set)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
