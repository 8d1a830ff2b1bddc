"""Frames built once by the gateway are the bytes aiohttp itself would write."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiohttp import WSMsgType
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_websocket import WebSocketWriter

from backend.chat.gateway.wire import text_frame


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
async def test_a_text_frame_is_what_aiohttp_writes(size):
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte UTF-8: lengths count bytes
    transport = _Transport()
    protocol = BaseProtocol(asyncio.get_running_loop())
    writer = WebSocketWriter(protocol, cast(Any, transport))
    await writer.send_frame(text.encode(), WSMsgType.TEXT)
    assert text_frame(text) == bytes(transport.written)
