"""A minimal RFC 6455 client on ``asyncio.Protocol``: the load generator's sockets.

Why not aiohttp's client: the generator must cost less per message than the servers it
measures. Here a received frame is one header parse and one callback (no task, no future,
no message object), and a sent frame is one ``transport.write``.

Outgoing frames are masked with the all-zero key. RFC 6455 requires a mask on every client
frame and says the key *should* be unpredictable (it defends proxies against cache
poisoning by browser scripts); a benchmark client on loopback has no such proxy, and XOR
with zero leaves the payload as is, so no byte-by-byte masking is done in Python.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ZERO_MASK = b"\x00\x00\x00\x00"

FrameHandler = Callable[["WsConn", bytes], None]


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one final, masked (zero key) client frame of ``length`` bytes."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, 0x80 | length)) + ZERO_MASK
    if length < 65536:
        return struct.pack("!BBH", first, 0x80 | 126, length) + ZERO_MASK
    return struct.pack("!BBQ", first, 0x80 | 127, length) + ZERO_MASK


class HandshakeError(ConnectionError):
    """The server did not switch protocols (its status line is the message)."""


class WsConn(asyncio.Protocol):
    """One client socket. ``on_frame(conn, payload)`` gets every text/binary message."""

    __slots__ = (
        "_buf",
        "_fragments",
        "_request",
        "_upgraded",
        "closed",
        "on_close",
        "on_frame",
        "opened",
        "tag",
        "transport",
    )

    def __init__(self, request: bytes, on_frame: FrameHandler, tag: object = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_frame = on_frame
        self.on_close: Callable[[WsConn], None] | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self._buf = bytearray()
        self._upgraded = False
        self._request = request
        self._fragments: bytearray | None = None
        self.tag = tag
        """Whatever the owner wants to find again from a callback (a client record)."""

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if self.on_close is not None:
            self.on_close(self)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if self.opened.done():  # the caller gave up waiting (cancelled): just leave
                self.abort()
                return
            if b" 101 " not in status:
                self.opened.set_exception(HandshakeError(status.decode(errors="replace")))
                self.abort()
                return
            self._upgraded = True
            self.opened.set_result(None)
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            end = pos + head + length
            if end > size:
                break
            payload = bytes(buf[pos + head : end])
            pos = end
            opcode = b0 & 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if b0 & 0x80:
                    self.on_frame(self, payload)
                else:
                    self._fragments = bytearray(payload)
            elif opcode == OP_CONT and self._fragments is not None:
                self._fragments += payload
                if b0 & 0x80:
                    whole, self._fragments = bytes(self._fragments), None
                    self.on_frame(self, whole)
            elif opcode == OP_PING:
                self._write(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._write(OP_CLOSE, payload[:2])
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
        if pos:
            del buf[:pos]

    # --- sending ---------------------------------------------------------------------------
    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame_header(opcode, len(payload)) + payload)

    def send(self, payload: bytes) -> None:
        """Send one text message (``payload`` is UTF-8 already)."""
        self._write(OP_TEXT, payload)

    def close(self) -> None:
        """A clean close: a close frame (1000), then the server closes the TCP connection."""
        self._write(OP_CLOSE, struct.pack("!H", 1000))

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a client that vanished)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def connect(
    host: str,
    port: int,
    path: str,
    on_frame: FrameHandler,
    *,
    tag: object = None,
    patience: float = 120.0,
) -> WsConn:
    """Open a socket and finish the upgrade; raises ``HandshakeError`` / ``OSError``."""
    loop = asyncio.get_running_loop()
    request = upgrade_request(host, port, path)
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: WsConn(request, on_frame, tag), host, port), patience
    )
    await asyncio.wait_for(conn.opened, patience)
    return conn
