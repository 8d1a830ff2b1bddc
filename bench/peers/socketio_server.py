"""The peer: python-socketio's ``AsyncServer`` on aiohttp, doing the same room broadcast.

Events: ``join`` (room name; acknowledged with ``true``) enters a room; ``send`` (an
object with ``room``) is emitted as ``message`` to everyone in the room, sender included.
No auth and no persistence: socket.io's own work (Engine.IO framing, packet encoding, the
room manager) on top of aiohttp, which is what a socket.io user would deploy.

Run: ``python -m bench.peers.socketio_server --port 9002``
"""

from __future__ import annotations

import argparse
from typing import Any

import socketio
from aiohttp import web


async def health(_: web.Request) -> web.Response:
    return web.json_response({"message": "alive"})


def create_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    @sio.on("join")  # type: ignore[misc]
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("send")  # type: ignore[misc]
    async def send(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("message", data, room=data["room"])

    app.router.add_get("/health", health)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    web.run_app(create_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
