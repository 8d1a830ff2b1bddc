"""Contract of the document port, run against every adapter (SQLite and MongoDB).

Both adapters must answer every call identically, so each test here runs once per adapter.
Datetimes are written at millisecond precision (BSON's) unless the test is about precision.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.stores.documents import (
    EXPIRED,
    DocumentStore,
    EventQuery,
    EventRecord,
    StoredMessage,
    ToDevice,
)
from backend.stores.documents.mongo import MongoDocumentStore
from backend.stores.documents.sqlite import SqliteDocumentStore
from tests.contracts.documents import T0, drop_mongo_database, msg

OpenStore = Callable[[], DocumentStore]


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Makes (unopened) stores that all share one backing database for this test."""
    if request.param == "sqlite":
        path = tmp_path / "documents.db"
        yield lambda: SqliteDocumentStore(path)
        return
    url: str = request.getfixturevalue("mongo_url")
    database: str = request.getfixturevalue("mongo_database")
    yield lambda: MongoDocumentStore(url, database)
    drop_mongo_database(url, database)


@asynccontextmanager
async def opened(open_store: OpenStore, retention_days: int = 30) -> AsyncIterator[DocumentStore]:
    store = open_store()
    try:
        await store.setup(event_retention_days=retention_days)
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> AsyncIterator[DocumentStore]:
    async with opened(open_store) as s:
        yield s


def to_dev(id: str, user: str = "bob", device: str = "BOBPHONE", ts: datetime = T0) -> ToDevice:
    return ToDevice(
        id=id,
        recipient_user=user,
        recipient_device=device,
        sender_user="alice",
        sender_device="ALICEPHONE",
        ts=ts,
        ciphertext=f"olm:{id}",
    )


def seqs(messages: list[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


def recent(minutes_ago: float) -> datetime:
    """A millisecond-precision time inside the event retention window."""
    value = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


# --- lifecycle ---------------------------------------------------------------------------------


async def test_setup_is_idempotent_and_keeps_data(store: DocumentStore) -> None:
    assert await store.insert_message(msg("r", 1))
    await store.setup()
    await store.setup(event_retention_days=7)
    assert await store.find_message("r-1") == msg("r", 1)


async def test_setup_rejects_a_retention_below_one_day(store: DocumentStore) -> None:
    with pytest.raises(ValueError):
        await store.setup(event_retention_days=0)


async def test_data_survives_close_and_reopen(open_store: OpenStore) -> None:
    async with opened(open_store) as first:
        assert await first.next_seq("r") == 1
        assert await first.insert_message(msg("r", 1))
        assert await first.put_to_device(to_dev("k1"))
    async with opened(open_store) as second:
        assert await second.find_message("r-1") == msg("r", 1)
        assert await second.next_seq("r") == 2
        assert await second.pending_to_device("bob", "BOBPHONE", 10) == [to_dev("k1")]


# --- seq allocation ----------------------------------------------------------------------------


async def test_next_seq_counts_from_one_per_room(store: DocumentStore) -> None:
    assert [await store.next_seq("a") for _ in range(3)] == [1, 2, 3]
    assert await store.next_seq("b") == 1
    assert await store.next_seq("a") == 4


async def test_concurrent_next_seq_is_contiguous(store: DocumentStore) -> None:
    got = await asyncio.gather(*(store.next_seq("busy") for _ in range(50)))
    assert sorted(got) == list(range(1, 51))


async def test_next_seq_is_atomic_across_two_clients(open_store: OpenStore) -> None:
    async with opened(open_store) as one, opened(open_store) as two:
        calls = [s.next_seq("shared") for s in (one, two) for _ in range(25)]
        calls += [one.next_seq("other") for _ in range(10)]
        got = await asyncio.gather(*calls)
    assert sorted(got[:50]) == list(range(1, 51))
    assert sorted(got[50:]) == list(range(1, 11))


# --- messages ----------------------------------------------------------------------------------


async def test_message_round_trips_every_field(store: DocumentStore) -> None:
    message = msg(
        "r",
        1,
        kind="e",
        expires_at=T0 + timedelta(days=1),
        # Opaque text: nothing in it may be read as a query, JSON or markup.
        ciphertext='{"$gt": ""} <b>\u00e9\u6f22\U0001f512</b> \' ; DROP TABLE messages; --',
    )
    assert await store.insert_message(message)
    assert await store.find_message("r-1") == message
    assert await store.find_message("nope") is None


async def test_defaults_round_trip(store: DocumentStore) -> None:
    assert await store.insert_message(msg("r", 1))
    found = await store.find_message("r-1")
    assert found is not None
    assert (found.kind, found.expires_at) == ("m", None)


async def test_duplicate_msg_id_is_rejected_and_nothing_written(store: DocumentStore) -> None:
    original = msg("r", 1, msg_id="client-made")
    assert await store.insert_message(original)
    retry = msg("r", 2, msg_id="client-made", ciphertext="different")
    assert await store.insert_message(retry) is False
    assert await store.find_message("client-made") == original
    assert await store.messages_after("r", 0, 10) == [original]
    assert await store.latest_seq(["r"]) == {"r": 1}


async def test_seq_clash_with_another_msg_id_raises(store: DocumentStore) -> None:
    assert await store.insert_message(msg("r", 1, msg_id="first"))
    with pytest.raises(Exception):
        await store.insert_message(msg("r", 1, msg_id="second"))
    assert await store.find_message("second") is None
    assert seqs(await store.messages_after("r", 0, 10)) == [1]


async def test_same_seq_in_different_rooms_is_fine(store: DocumentStore) -> None:
    assert await store.insert_message(msg("a", 1))
    assert await store.insert_message(msg("b", 1))
    assert await store.latest_seq(["a", "b"]) == {"a": 1, "b": 1}


async def _fill(store: DocumentStore, room: str, count: int) -> None:
    # Inserted out of order: the adapter must sort, not rely on insertion order.
    for seq in sorted(range(1, count + 1), key=lambda s: (s % 3, s)):
        assert await store.insert_message(msg(room, seq))


async def test_messages_after_pages_forward(store: DocumentStore) -> None:
    await _fill(store, "r", 10)
    await _fill(store, "other", 4)
    assert await store.messages_after("r", 0, 3) == [msg("r", 1), msg("r", 2), msg("r", 3)]
    assert seqs(await store.messages_after("r", 3, 3)) == [4, 5, 6]
    assert seqs(await store.messages_after("r", 9, 3)) == [10]
    assert await store.messages_after("r", 10, 3) == []
    assert seqs(await store.messages_after("r", 0, 100)) == list(range(1, 11))
    assert await store.messages_after("missing", 0, 10) == []


async def test_messages_before_pages_backward(store: DocumentStore) -> None:
    await _fill(store, "r", 10)
    await _fill(store, "other", 4)
    assert seqs(await store.messages_before("r", 11, 3)) == [8, 9, 10]
    assert seqs(await store.messages_before("r", 8, 3)) == [5, 6, 7]
    assert seqs(await store.messages_before("r", 3, 5)) == [1, 2]
    assert await store.messages_before("r", 1, 5) == []
    assert seqs(await store.messages_before("r", 1000, 2)) == [9, 10]
    assert await store.messages_before("r", 5, 1) == [msg("r", 4)]


async def test_non_positive_limits_return_nothing(store: DocumentStore) -> None:
    await _fill(store, "r", 3)
    assert await store.messages_after("r", 0, 0) == []
    assert await store.messages_before("r", 10, 0) == []
    assert await store.messages_after("r", 0, -1) == []


async def test_latest_seq(store: DocumentStore) -> None:
    for seq in (1, 2, 5):
        assert await store.insert_message(msg("gappy", seq))
    await _fill(store, "full", 3)
    await store.next_seq("allocated-only")  # a counter alone is not an archived message
    assert await store.latest_seq(["gappy", "full", "allocated-only", "never"]) == {
        "gappy": 5,
        "full": 3,
        "allocated-only": 0,
        "never": 0,
    }
    assert await store.latest_seq([]) == {}


async def test_delete_room_removes_messages_and_counter(store: DocumentStore) -> None:
    for _ in range(3):
        await store.next_seq("gone")
    await _fill(store, "gone", 3)
    await _fill(store, "kept", 2)
    assert await store.delete_room("gone") == 3
    assert await store.messages_after("gone", 0, 10) == []
    assert await store.find_message("gone-1") is None
    assert await store.latest_seq(["gone", "kept"]) == {"gone": 0, "kept": 2}
    assert await store.next_seq("gone") == 1
    assert seqs(await store.messages_after("kept", 0, 10)) == [1, 2]
    assert await store.delete_room("never-existed") == 0


async def test_expiry_blanks_only_what_has_passed_and_keeps_every_seq(
    store: DocumentStore,
) -> None:
    now = T0 + timedelta(hours=1)
    await store.insert_message(msg("r", 1, expires_at=now - timedelta(minutes=1)))
    await store.insert_message(msg("r", 2, expires_at=now))
    await store.insert_message(msg("r", 3, expires_at=now + timedelta(milliseconds=1)))
    await store.insert_message(msg("r", 4))
    await store.insert_message(msg("other", 1, expires_at=now - timedelta(days=3)))
    assert await store.expire_messages(now) == 3
    history = await store.messages_after("r", 0, 10)
    assert seqs(history) == [1, 2, 3, 4], "no holes"
    assert [(m.kind, m.ciphertext == "") for m in history] == [
        (EXPIRED, True),
        (EXPIRED, True),
        ("m", False),
        ("m", False),
    ]
    assert history[0].msg_id == msg("r", 1).msg_id and history[0].expires_at is not None
    [gone] = await store.messages_after("other", 0, 10)
    assert gone.kind == EXPIRED and gone.ciphertext == ""
    assert await store.expire_messages(now) == 0
    # The newest message expiring does not give its seq back.
    assert await store.latest_seq(["other"]) == {"other": 1}


# --- to-device queue ---------------------------------------------------------------------------


async def test_to_device_put_dedupes_by_id(store: DocumentStore) -> None:
    assert await store.put_to_device(to_dev("k1"))
    assert await store.put_to_device(replace(to_dev("k1"), ciphertext="other")) is False
    assert await store.pending_to_device("bob", "BOBPHONE", 10) == [to_dev("k1")]


async def test_pending_to_device_is_oldest_first_for_that_device_only(store: DocumentStore) -> None:
    later = T0 + timedelta(seconds=5)
    await store.put_to_device(to_dev("late", ts=later))
    await store.put_to_device(to_dev("tie-1", ts=T0))
    await store.put_to_device(to_dev("tie-2", ts=T0))
    await store.put_to_device(to_dev("early", ts=T0 - timedelta(seconds=5)))
    await store.put_to_device(to_dev("laptop", device="BOBLAPTOP"))
    await store.put_to_device(to_dev("carol", user="carol", device="BOBPHONE"))
    pending = await store.pending_to_device("bob", "BOBPHONE", 10)
    assert [m.id for m in pending] == ["early", "tie-1", "tie-2", "late"]
    assert pending[0] == to_dev("early", ts=T0 - timedelta(seconds=5))
    limited = await store.pending_to_device("bob", "BOBPHONE", 2)
    assert [m.id for m in limited] == ["early", "tie-1"]
    assert await store.pending_to_device("bob", "BOBPHONE", 0) == []
    assert await store.pending_to_device("nobody", "X", 10) == []


async def test_ack_only_deletes_that_devices_own_messages(store: DocumentStore) -> None:
    await store.put_to_device(to_dev("mine-1"))
    await store.put_to_device(to_dev("mine-2"))
    await store.put_to_device(to_dev("laptop", device="BOBLAPTOP"))
    await store.put_to_device(to_dev("carol", user="carol"))
    acked = await store.ack_to_device("bob", "BOBPHONE", ["mine-1", "laptop", "carol", "unknown"])
    assert acked == 1
    assert [m.id for m in await store.pending_to_device("bob", "BOBPHONE", 10)] == ["mine-2"]
    assert [m.id for m in await store.pending_to_device("bob", "BOBLAPTOP", 10)] == ["laptop"]
    assert [m.id for m in await store.pending_to_device("carol", "BOBPHONE", 10)] == ["carol"]
    assert await store.ack_to_device("bob", "BOBPHONE", []) == 0
    assert await store.ack_to_device("bob", "BOBPHONE", ["mine-1"]) == 0


async def test_delete_device_inbox(store: DocumentStore) -> None:
    await store.put_to_device(to_dev("p1"))
    await store.put_to_device(to_dev("p2"))
    await store.put_to_device(to_dev("l1", device="BOBLAPTOP"))
    await store.put_to_device(to_dev("c1", user="carol"))
    assert await store.delete_device_inbox("bob", "BOBPHONE") == 2
    assert await store.pending_to_device("bob", "BOBPHONE", 10) == []
    assert [m.id for m in await store.pending_to_device("bob", "BOBLAPTOP", 10)] == ["l1"]
    await store.put_to_device(to_dev("p3"))
    assert await store.delete_device_inbox("bob") == 2
    assert await store.pending_to_device("bob", "BOBLAPTOP", 10) == []
    assert [m.id for m in await store.pending_to_device("carol", "BOBPHONE", 10)] == ["c1"]
    assert await store.delete_device_inbox("bob") == 0


# --- event log ---------------------------------------------------------------------------------


def event(event_id: str, when: datetime, **fields: object) -> EventRecord:
    values: dict[str, object] = {
        "event_id": event_id,
        "datetime": when,
        "server": "auth",
        "category": "login",
        "id": "alice",
    }
    values.update(fields)
    return EventRecord(**values)  # type: ignore[arg-type]


async def test_event_round_trips_and_dedupes(store: DocumentStore) -> None:
    when = recent(5)
    first = event(
        "e1",
        when,
        data={"ip": "10.0.0.7", "ok": True, "tries": 3, "nested": {"list": [1, "two"]}},
        request_id="req-1",
    )
    assert await store.insert_events([first]) == 1
    assert await store.insert_events([replace(first, data={"other": 1})]) == 0
    assert await store.insert_events([event("e2", when - timedelta(seconds=1))]) == 1
    got = await store.query_events(EventQuery(id="alice"))
    assert got == [first, event("e2", when - timedelta(seconds=1))]
    assert got[1].data == {} and got[1].request_id is None


async def test_a_batch_of_events_skips_only_the_repeats(store: DocumentStore) -> None:
    when = recent(5)
    old = event("e0", when)
    assert await store.insert_events([old]) == 1
    batch = [event("e1", when), replace(old, data={"other": 1}), event("e2", when)]
    batch.append(replace(batch[0], data={"again": True}))  # a repeat within the batch
    assert await store.insert_events(batch) == 2
    assert await store.insert_events([]) == 0
    got = {e.event_id: e for e in await store.query_events(EventQuery(id="alice"))}
    assert got == {"e0": old, "e1": event("e1", when), "e2": event("e2", when)}


async def test_query_events_is_newest_first_and_limited(store: DocumentStore) -> None:
    events = [event(f"e{i}", recent(10 - i)) for i in range(6)]
    for e in (events[3], events[0], events[5], events[1], events[4], events[2]):
        assert await store.insert_events([e]) == 1
    assert await store.query_events(EventQuery()) == events[::-1]
    assert await store.query_events(EventQuery(limit=3)) == [events[5], events[4], events[3]]
    assert await store.query_events(EventQuery(limit=0)) == []


async def test_query_events_since_is_inclusive_until_exclusive(store: DocumentStore) -> None:
    times = [recent(30 - i) for i in range(5)]
    for i, when in enumerate(times):
        await store.insert_events([event(f"e{i}", when)])
    got = await store.query_events(EventQuery(since=times[1], until=times[3]))
    assert [e.event_id for e in got] == ["e2", "e1"]


FILTERS = ("server", "category", "id", "since", "until")


@pytest.mark.parametrize(
    "names",
    [c for n in range(len(FILTERS) + 1) for c in itertools.combinations(FILTERS, n)],
    ids=lambda c: "+".join(c) or "none",
)
async def test_query_events_applies_every_filter_combination(
    store: DocumentStore, names: tuple[str, ...]
) -> None:
    # Each (server, category, id) triple occurs twice; the since/until window holds one of each.
    triples = list(itertools.product(("auth", "chat"), ("login", "signup"), ("alice", "bob")))
    base = recent(120)
    log = [
        event(f"e{i}", base + timedelta(minutes=i), server=s, category=c, id=who)
        for i, (s, c, who) in enumerate(triples * 2)
    ]
    for e in reversed(log):
        assert await store.insert_events([e]) == 1
    wanted = {
        "server": "chat",
        "category": "signup",
        "id": "bob",
        "since": base + timedelta(minutes=4),
        "until": base + timedelta(minutes=12),
    }
    query = EventQuery(**{name: wanted[name] for name in names})  # type: ignore[arg-type]

    def matches(e: EventRecord) -> bool:
        return (
            all(getattr(e, n) == wanted[n] for n in ("server", "category", "id") if n in names)
            and ("since" not in names or e.datetime >= wanted["since"])  # type: ignore[operator]
            and ("until" not in names or e.datetime < wanted["until"])  # type: ignore[operator]
        )

    expected = [e.event_id for e in reversed(log) if matches(e)]
    assert expected  # the data set gives every combination something to find
    assert [e.event_id for e in await store.query_events(query)] == expected


async def test_events_past_retention_are_not_returned(open_store: OpenStore) -> None:
    now = recent(0)
    ages = {"old": 40, "mid": 10, "new": 0}
    async with opened(open_store, retention_days=30) as store:
        for name, days in ages.items():
            await store.insert_events([event(name, now - timedelta(days=days, minutes=1))])
        got = await store.query_events(EventQuery(since=now - timedelta(days=400)))
        assert [e.event_id for e in got] == ["new", "mid"]
        await store.setup(event_retention_days=7)
        assert [e.event_id for e in await store.query_events(EventQuery())] == ["new"]
    async with opened(open_store, retention_days=7) as reopened:
        assert [e.event_id for e in await reopened.query_events(EventQuery())] == ["new"]


# --- datetimes ---------------------------------------------------------------------------------


async def test_datetimes_come_back_aware_utc_to_the_millisecond(store: DocumentStore) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    local = datetime(2025, 6, 1, 12, 0, 0, 987654, tzinfo=ist)
    expected = datetime(2025, 6, 1, 6, 30, 0, 987000, tzinfo=UTC)
    await store.insert_message(msg("r", 1, ts=local, expires_at=local + timedelta(days=365)))
    await store.put_to_device(to_dev("k", ts=local))
    when = recent(1).astimezone(ist).replace(microsecond=654321)
    await store.insert_events([event("e", when)])

    found = await store.find_message("r-1")
    pending = await store.pending_to_device("bob", "BOBPHONE", 1)
    (logged,) = await store.query_events(EventQuery())
    assert found is not None and found.expires_at is not None
    values = [found.ts, found.expires_at, pending[0].ts, logged.datetime]
    assert all(v.utcoffset() == timedelta(0) for v in values)
    assert found.ts == expected
    assert found.expires_at == expected.replace(year=2026)
    assert pending[0].ts == expected
    assert logged.datetime == when.astimezone(UTC).replace(microsecond=654000)


async def test_naive_datetimes_are_refused(store: DocumentStore) -> None:
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError):
        await store.insert_message(msg("r", 1, ts=naive))
    with pytest.raises(ValueError):
        await store.put_to_device(to_dev("k", ts=naive))
    with pytest.raises(ValueError):
        await store.insert_events([event("e", naive)])
    with pytest.raises(ValueError):
        await store.expire_messages(naive)
    with pytest.raises(ValueError):
        await store.query_events(EventQuery(since=naive))
    assert await store.find_message("r-1") is None
    assert await store.pending_to_device("bob", "BOBPHONE", 10) == []


# --- property: paging agrees with a plain list ---------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    archived=st.sets(st.integers(min_value=1, max_value=40), max_size=15),
    cursor=st.integers(min_value=0, max_value=42),
    limit=st.integers(min_value=1, max_value=8),
)
async def test_paging_matches_a_sorted_list(
    store: DocumentStore, archived: set[int], cursor: int, limit: int
) -> None:
    room = uuid.uuid4().hex  # the store is shared by every example
    for seq in archived:
        assert await store.insert_message(msg(room, seq))
    ordered = sorted(archived)
    after = [s for s in ordered if s > cursor][:limit]
    before = [s for s in ordered if s < cursor][-limit:]
    assert seqs(await store.messages_after(room, cursor, limit)) == after
    assert seqs(await store.messages_before(room, cursor, limit)) == before
    assert await store.latest_seq([room]) == {room: max(archived, default=0)}


# --- message batches (the archiver's batch path) ------------------------------------------------


async def test_a_batch_is_written_whole(store: DocumentStore) -> None:
    batch = [msg("a", 1), msg("b", 1), msg("a", 2)]
    assert await store.insert_messages(batch) == 3
    assert await store.insert_messages([]) == 0
    for message in batch:
        assert await store.find_message(message.msg_id) == message
    assert await store.latest_seq(["a", "b"]) == {"a": 2, "b": 1}


async def test_a_batch_stops_at_a_known_msg_id_and_the_rest_can_be_retried(
    store: DocumentStore,
) -> None:
    original = msg("r", 1, msg_id="client-made")
    assert await store.insert_message(original)
    clash = msg("r", 3, msg_id="client-made", ciphertext="different")
    assert await store.insert_messages([msg("r", 2), clash, msg("r", 4)]) == 1
    # What comes before the clash is written; the original is untouched, nothing follows
    # the clash, and the rest goes in one by one as the archiver's fallback does it.
    assert await store.find_message("r-2") == msg("r", 2)
    assert await store.find_message("client-made") == original
    assert await store.find_message("r-4") is None
    assert await store.insert_message(msg("r", 4))
    assert seqs(await store.messages_after("r", 0, 10)) == [1, 2, 4]


async def test_a_batch_whose_first_msg_id_is_known_writes_nothing(store: DocumentStore) -> None:
    assert await store.insert_message(msg("r", 1, msg_id="known"))
    assert await store.insert_messages([msg("r", 2, msg_id="known"), msg("r", 3)]) == 0
    assert seqs(await store.messages_after("r", 0, 10)) == [1]


async def test_a_seq_clash_in_a_batch_raises(store: DocumentStore) -> None:
    assert await store.insert_message(msg("r", 1, msg_id="first"))
    with pytest.raises(Exception):
        await store.insert_messages([msg("r", 1, msg_id="second")])
    assert await store.find_message("second") is None
