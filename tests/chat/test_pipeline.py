"""Message intake and history reads, on the embedded stores and on the real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from backend.chat.history import (
    MAX_LIMIT,
    History,
    commit_channel,
    commit_channels,
    committed_ring,
    message_wire,
)
from backend.chat.pipeline import (
    MAX_CIPHERTEXT_BYTES,
    Envelope,
    Intake,
    MalformedEnvelope,
    partition_of,
    partition_queue,
)
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode
from backend.stores.documents.port import StoredMessage
from backend.stores.queue.port import (
    DurableQueue,
    QueueSpec,
    QueueUnavailable,
    Subscription,
)
from tests.archiver.harness import (
    TEST_TIMEOUT,
    Stack,
    allow_all,
    envelope,
    new_msg_id,
    new_room,
    stack,
)

__all__ = ["stack"]  # the fixture

T0 = datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def make(**change: object) -> Envelope:
    fields: dict[str, object] = {
        "msg_id": "0123456789abcdef0123456789abcdef",
        "room": "r1",
        "sender": "alice",
        "device": "DEV1",
        "ciphertext": "AwgAEnA",
        "now": T0,
    }
    return Envelope.create(**(fields | change))  # type: ignore[arg-type]


# --- envelopes and partitions (pure) ----------------------------------------------------------


def test_envelope_round_trips_at_millisecond_precision() -> None:
    e = make(kind="m.reaction")
    assert e.ts == T0.replace(microsecond=123000)
    assert Envelope.decode(e.encode()) == e
    assert json.loads(e.encode())["ts"] == "2025-05-06T07:08:09.123Z"


@pytest.mark.parametrize(
    "msg_id", ["0123456789abcdef0123456789abcdef", "AAECAwQFBgcICQoLDA0ODw", "a-_b" * 5 + "cd"]
)
def test_msg_id_is_128_bits_in_hex_or_url_safe_base64(msg_id: str) -> None:
    assert make(msg_id=msg_id).msg_id == msg_id


def test_hex_msg_id_has_one_spelling() -> None:
    upper = "0123456789ABCDEF0123456789ABCDEF"
    assert make(msg_id=upper).msg_id == upper.lower()


@pytest.mark.parametrize(
    "change",
    [
        {"msg_id": "0123456789abcdef"},  # 64 bits
        {"msg_id": "0123456789abcdef0123456789abcdeg"},
        {"msg_id": "AAECAwQFBgcICQoLDA0OD+"},  # not URL-safe
        {"msg_id": 12},
        {"room": ""},
        {"room": "a b"},
        {"sender": None},
        {"device": "x" * 65},
        {"kind": "Upper"},
        {"ciphertext": ""},
        {"ciphertext": b"bytes"},
        {"ciphertext": "\ud800"},  # a lone surrogate: no store keeps it
    ],
)
def test_malformed_envelopes_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(MalformedEnvelope):
        make(**change)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff",
        b"[]",
        b'{"msg_id": "0123456789abcdef0123456789abcdef"}',
        make().encode().replace(b"Z", b""),  # naive time
        make().encode().replace(b"0123456789abcdef", b"0123456789ABCDEF"),  # not canonical
    ],
)
def test_decode_refuses_what_encode_did_not_make(body: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(body)


def test_ciphertext_size_is_limited_in_utf8_bytes() -> None:
    intake = Intake(None, allow_all, max_ciphertext_bytes=10)  # type: ignore[arg-type]
    ok = intake.envelope(msg_id=new_msg_id(), room="r", sender="a", device="d", ciphertext="é" * 5)
    assert ok.ciphertext == "é" * 5
    for too_big in ("é" * 6, "x" * 11):
        with pytest.raises(ApiError) as refused:
            intake.envelope(
                msg_id=new_msg_id(), room="r", sender="a", device="d", ciphertext=too_big
            )
        assert refused.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(ApiError) as invalid:
        intake.envelope(msg_id="short", room="r", sender="a", device="d", ciphertext="SECRET")
    assert invalid.value.code is ErrorCode.INVALID
    assert "msg_id" in invalid.value.message and "SECRET" not in invalid.value.message
    with pytest.raises(ValueError, match="max_ciphertext_bytes"):
        Intake(None, allow_all, max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES + 1)  # type: ignore[arg-type]


def test_partition_is_stable_and_spreads_rooms() -> None:
    assert partition_of("room-1", 8) == partition_of("room-1", 8)
    assert [partition_of(f"room-{i}", 8) for i in range(3)] == [
        partition_of(f"room-{i}", 8) for i in range(3)
    ]
    counts = [0] * 8
    for i in range(800):
        counts[partition_of(f"room-{i}", 8)] += 1
    assert min(counts) > 60  # roughly even
    assert partition_queue(3) == "sealchat.messages.3"


def test_ring_payload_is_compact_json_with_every_field() -> None:
    e = make()
    message = StoredMessage(e.room, 7, e.msg_id, e.sender, e.device, e.ts, e.ciphertext, e.kind)
    payload = committed_ring(message)
    assert b" " not in payload
    assert json.loads(payload) == {"type": "committed", **message_wire(message)}
    assert json.loads(payload)["ts"] == "2025-05-06T07:08:09.123Z"
    assert commit_channels(3) == ["committed.0", "committed.1", "committed.2"]
    assert commit_channel(7) == "committed.7"


# --- intake -------------------------------------------------------------------------------


class HeldQueue(DurableQueue):
    """A test double whose publishes wait until the test lets them through (or fails them)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.fail = False
        self.published: list[tuple[str, bytes, str | None]] = []

    async def declare(self, spec: QueueSpec) -> None:
        return None

    async def publish(
        self,
        queue: str,
        body: bytes,
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.release.wait()
        if self.fail:
            raise QueueUnavailable("broker gone")
        self.published.append((queue, body, message_id))

    def consume(self, queue: str, *, prefetch: int = 64) -> Subscription:
        raise AssertionError("the intake only publishes; nothing may consume from this double")

    async def purge(self, queue: str) -> int:
        return 0

    async def depth(self, queue: str) -> int:
        return 0

    async def close(self) -> None:
        return None


async def test_accept_returns_only_after_the_queue_confirmed() -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = HeldQueue()
        intake = Intake(queue, allow_all)
        e = envelope(intake, "room-x", "alice", "hi")
        accepting = asyncio.create_task(intake.accept(e))
        await asyncio.sleep(0.05)
        assert not accepting.done() and queue.published == []
        queue.release.set()
        assert await accepting == e
        assert queue.published == [
            (partition_queue(partition_of("room-x", 8)), e.encode(), e.msg_id)
        ]


async def test_a_failed_publish_tells_the_sender_to_send_again() -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = HeldQueue()
        queue.fail = True
        queue.release.set()
        intake = Intake(queue, allow_all)
        with pytest.raises(ApiError) as refused:
            await intake.accept(envelope(intake, "room-x", "alice", "hi"))
        assert refused.value.code is ErrorCode.UNAVAILABLE
        assert intake.accepted == 0


async def test_intake_publishes_to_the_rooms_partition(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = stack.queue()
        intake = Intake(queue, allow_all, partitions=4, namespace=stack.namespace)
        room = new_room()
        e = await intake.accept(envelope(intake, room, "alice", "hi"))
        name = partition_queue(partition_of(room, 4), stack.namespace)
        async with contextlib.aclosing(queue.consume(name)) as deliveries:
            async with asyncio.timeout(10):
                got = await anext(deliveries)
            assert (got.message_id, Envelope.decode(got.body)) == (e.msg_id, e)
            await got.ack()
        assert intake.accepted == 1


async def test_a_non_member_is_refused_and_nothing_is_published(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        queue = stack.queue()
        asked: list[tuple[str, str]] = []

        async def members_only(room: str, user: str) -> bool:
            asked.append((room, user))
            return user == "alice"

        intake = Intake(queue, members_only, partitions=2, namespace=stack.namespace)
        await intake.declare()
        room = new_room()
        with pytest.raises(ApiError) as refused:
            await intake.accept(envelope(intake, room, "mallory", "let me in"))
        assert refused.value.code is ErrorCode.NOT_MEMBER
        assert asked == [(room, "mallory")]
        assert intake.accepted == 0
        for p in range(2):
            assert await queue.purge(partition_queue(p, stack.namespace)) == 0
        await intake.accept(envelope(intake, room, "alice", "fine"))
        total = sum([await queue.purge(partition_queue(p, stack.namespace)) for p in range(2)])
        assert total == 1


# --- history ------------------------------------------------------------------------------


async def test_history_pages_and_latest(stack: Stack) -> None:
    async with asyncio.timeout(TEST_TIMEOUT):
        room, empty = new_room(), new_room()
        for seq in range(1, 8):
            e = make(msg_id=new_msg_id(), room=room)
            await stack.documents.insert_message(
                StoredMessage(room, seq, e.msg_id, e.sender, e.device, e.ts, e.ciphertext)
            )
        history = History(stack.documents)
        assert [m.seq for m in await history.after(room, 0, 3)] == [1, 2, 3]
        assert [m.seq for m in await history.after(room, 5, 500)] == [6, 7]
        assert [m.seq for m in await history.before(room, 6, 2)] == [4, 5]
        assert [m.seq for m in await history.before(room, 1, 10)] == []
        assert await history.latest([room, empty, room]) == {room: 7, empty: 0}
        assert await history.latest([]) == {}


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.after("r", 0, 0),
        lambda h: h.after("r", 0, MAX_LIMIT + 1),
        lambda h: h.after("r", -1, 10),
        lambda h: h.after("r", 0, True),
        lambda h: h.before("r", 0, 10),
        lambda h: h.before("r", 5, "10"),
        lambda h: h.latest([f"r{i}" for i in range(501)]),
    ],
)
async def test_history_refuses_unbounded_or_invalid_reads(call) -> None:
    history = History(None)  # type: ignore[arg-type]  # refused before any store call
    with pytest.raises(ApiError) as refused:
        await call(history)
    assert refused.value.code is ErrorCode.INVALID
