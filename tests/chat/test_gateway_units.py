"""Gateway parts without a socket: the token bucket, the command table and its dispatcher."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from backend.chat.gateway.commands import COMMANDS, CommandTable
from backend.chat.gateway.connection import Connection
from backend.chat.gateway.ratelimit import TokenBucket
from backend.common.errors import ApiError
from backend.protocol.codec import BadFrame, UnknownFrame, decode_request
from backend.protocol.errors import ErrorCode
from backend.protocol.frames import Ping, Presence, Read, Typing
from backend.stores.queue.port import QueueUnavailable

CONN = cast(Connection, object())  # the handlers below never touch it


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    bucket = TokenBucket(2.0, 3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back at 2 per second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 100  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


async def test_dispatch_maps_each_outcome_to_one_result(caplog):
    table = CommandTable()

    @table.register(Typing)
    async def typing(conn: Any, frame: Typing) -> dict[str, Any]:
        if frame.room == "denied":
            raise ApiError(ErrorCode.NOT_MEMBER, "you are not in that room")
        if frame.room == "down":
            raise QueueUnavailable("broker down")
        if frame.room.startswith("boom"):
            raise RuntimeError(f"failed on {frame.room}")
        return {"room": frame.room}

    async def run(text: str) -> dict[str, Any]:
        return (await table.dispatch(CONN, decode_request(text))).model_dump(exclude_none=True)

    ok = await run('{"id": 1, "type": "typing", "room": "r1", "active": true}')
    assert ok["success"] and ok["result"] == {"room": "r1"}
    denied = await run('{"id": 2, "type": "typing", "room": "denied", "active": true}')
    assert denied["error"]["code"] == ErrorCode.NOT_MEMBER and denied["id"] == 2
    down = await run('{"id": 3, "type": "typing", "room": "down", "active": true}')
    assert down["error"]["code"] == ErrorCode.UNAVAILABLE
    with caplog.at_level(logging.DEBUG, logger="sealchat.gateway"):
        boom = await run('{"id": 4, "type": "typing", "room": "boom-Zq7secret", "active": true}')
    assert boom["error"] == {
        "code": ErrorCode.INTERNAL,
        "message": "internal error: try again, and report it if it keeps happening",
    }
    record = next(r for r in caplog.records if r.getMessage() == "command failed")
    assert record.error == "RuntimeError" and record.frame_type == "typing"  # type: ignore[attr-defined]
    assert "Zq7secret" not in str(record.__dict__) and not record.exc_info
    unhandled = await run('{"id": 5, "type": "read", "room": "r1", "seq": 1}')
    assert unhandled["error"]["code"] == ErrorCode.UNKNOWN_TYPE
    unknown = await table.dispatch(CONN, UnknownFrame(type="x", id=6))
    assert unknown.id == 6 and unknown.error and unknown.error.code == ErrorCode.UNKNOWN_TYPE
    bad = await table.dispatch(CONN, BadFrame("frame is not valid JSON"))
    assert bad.id == 0 and bad.error and bad.error.code == ErrorCode.BAD_FRAME


def test_registration_is_checked():
    table = CommandTable()
    with pytest.raises(ValueError, match="not the registered client frame"):
        table.register(Presence)  # type: ignore[type-var]  # a server frame
    table.register(Read)(_noop)
    with pytest.raises(ValueError, match="already registered"):
        table.register(Read)(_noop)


def test_the_gateway_itself_answers_auth_and_ping():
    assert COMMANDS.handles("auth") and COMMANDS.handles("ping")


async def _noop(conn: Any, frame: Any) -> None:
    return None


async def test_a_handler_may_return_nothing():
    table = CommandTable()
    table.register(Ping)(_noop)
    result = await table.dispatch(CONN, Ping(id=3))
    assert result.success and result.result == {}
