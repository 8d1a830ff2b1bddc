"""The lab's only way out: an HTTP proxy that listens inside the lab network namespace and
connects out from the host, to an allow-list of package registries only.

Run by the harness as its own process (ended by its pid): ``python -m tests.lab.proxy --netns
NS --listen 192.168.123.1:3128``. Handles ``CONNECT host:443`` (pip over HTTPS) and absolute-URI
requests (apt over HTTP). Anything else, or any other host, gets 403 and is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from tests.lab.netns import inside

ALLOWED = {
    ("deb.debian.org", 80),
    ("security.debian.org", 80),
    ("pypi.org", 443),
    ("files.pythonhosted.org", 443),
}
counts: Counter[str] = Counter()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _refuse(writer: asyncio.StreamWriter, why: str) -> None:
    counts[f"refused {why}"] += 1
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    method, target, _version = [*request_line.split(" "), "", ""][:3]
    if method == "CONNECT":
        host, _, port_s = target.rpartition(":")
        port = int(port_s) if port_s.isdigit() else 0
        preface = b""
    else:
        url = urlsplit(target)
        host, port = url.hostname or "", url.port or 80
        preface = head  # absolute-form is valid HTTP/1.1 for the origin server as well
    if (host, port) not in ALLOWED:
        await _refuse(writer, f"{host}:{port}")
        return
    try:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 30)
    except (OSError, TimeoutError):
        counts[f"unreachable {host}"] += 1
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        writer.close()
        return
    counts[f"{method} {host}"] += 1
    if method == "CONNECT":
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        up_writer.write(preface)
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def serve(netns: str, address: str, port: int, stats: Path) -> None:
    with inside(netns):
        sock = socket.create_server((address, port), reuse_port=False, backlog=256)
    server = await asyncio.start_server(handle, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy listening on {address}:{port} in {netns}", flush=True)
    async with server:
        await stop.wait()


def write_stats(stats: Path) -> None:
    stats.write_text(json.dumps(dict(counts), indent=1, sort_keys=True))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--netns", required=True)
    p.add_argument("--listen", required=True, help="ADDRESS:PORT inside the namespace")
    p.add_argument("--stats", type=Path, required=True, help="where to write request counts")
    args = p.parse_args()
    address, _, port = args.listen.rpartition(":")
    try:
        asyncio.run(serve(args.netns, address, int(port), args.stats))
    finally:
        write_stats(args.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
