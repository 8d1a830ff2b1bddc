"""WebSocket frames built once, to be written as they are to every socket that gets them.

aiohttp's ``send_str`` encodes the text and builds the frame for each socket; a fan-out
builds it once (``text_frame``) and hands the same bytes to every recipient's transport.
Server frames are never masked (RFC 6455 §5.1) and the gateway never compresses, so a frame
is the same bytes for every socket.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
"""FIN bit and opcode 1 (text): one whole text message per frame."""
_FIN_PONG = 0x8A
PING_FRAME = b"\x89\x00"
"""A ping with no payload (FIN, opcode 9): the gateway's heartbeat."""
_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


def text_frame(text: str) -> bytes:
    """The whole unmasked WebSocket frame carrying ``text`` as one text message."""
    return utf8_frame(text.encode())


def utf8_frame(payload: bytes) -> bytes:
    """``text_frame`` of text already encoded; ``payload`` must be valid UTF-8 (RFC 6455
    §5.6), e.g. JSON that pydantic has parsed."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _LEN16(_FIN_TEXT, 126, size) + payload
    return _LEN64(_FIN_TEXT, 127, size) + payload


def pong_frame(payload: bytes) -> bytes:
    """The answer to a peer's ping: a pong carrying its payload (at most 125 bytes, which
    the reader has checked, RFC 6455 §5.5)."""
    return bytes((_FIN_PONG, len(payload))) + payload
