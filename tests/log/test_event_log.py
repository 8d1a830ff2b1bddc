"""The whole path: auth, chat and the archiver emit, the log service stores, operators query.

Runs once on the embedded stores and once on MariaDB, Redis, RabbitMQ and the MongoDB test
server (``settings`` is parametrised in ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.common.logs import JsonFormatter
from tests.log.scenario import User, events_of, new_id, run_scenario, stack, wait_for_events

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

# (server, category, the fields of data that identify it) for alice, each exactly once.
ALICE = [
    ("auth", "signup", {"result": "success"}),
    ("auth", "signin", {"result": "fail", "reason": "bad_credentials"}),
    ("auth", "signin", {"result": "success"}),
    ("auth", "refresh", {"result": "success"}),
    ("auth", "keys", {"action": "device_add"}),
    ("auth", "logout", {"result": "success"}),
    ("chat", "friend", {"action": "request"}),
    ("chat", "connect", {}),
    ("chat", "send", {"result": "success"}),
    ("chat", "send", {"result": "fail"}),
    ("chat", "disconnect", {}),
    ("archiver", "archive", {}),
]


def matches(event: dict[str, Any], server: str, category: str, data: dict[str, Any]) -> bool:
    return (
        event["server"] == server
        and event["category"] == category
        and all(event["data"].get(k) == v for k, v in data.items())
    )


async def operator_of(client: Any, uid: str) -> User:
    op = User(client, uid)
    await op.signup()
    await op.login()
    return op


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="sealchat")
    return caplog


async def test_events_arrive_once_each_with_the_seed_fields(aiohttp_client, settings, captured):
    operator = new_id("op")
    client = await stack(aiohttp_client, settings, operator)
    op = await operator_of(client, operator)
    s = await run_scenario(client)
    alice = s.alice.id

    found = await wait_for_events(op, len(ALICE), id=alice, limit="1000")
    assert len(found) == len(ALICE), [(e["server"], e["category"], e["data"]) for e in found]
    for server, category, data in ALICE:
        hits = [e for e in found if matches(e, server, category, data)]
        assert len(hits) == 1, (server, category, data, found)
    for e in found:
        assert set(e) == {"event_id", "datetime", "server", "category", "id", "data", "request_id"}
        assert ISO_Z.fullmatch(e["datetime"]), e["datetime"]
        assert e["id"] == alice
        if e["server"] == "auth":
            assert e["request_id"], e  # the HTTP request that caused it
    send = next(e for e in found if matches(e, "chat", "send", {"result": "success"}))
    assert send["data"]["room"] == s.room and send["data"]["msg_id"] == s.msg_id
    assert send["data"]["size"] > 0 and send["data"]["device"]
    refused = next(e for e in found if matches(e, "chat", "send", {"result": "fail"}))
    assert refused["data"]["reason"] == "not_member"
    archived = next(e for e in found if e["category"] == "archive")
    assert archived["data"]["msg_id"] == s.msg_id and archived["data"]["seq"] == 1

    room_events = await wait_for_events(op, 3, id=s.room, category="room")
    actions = Counter(e["data"]["action"] for e in room_events)
    assert actions["create"] == 1 and actions["join"] == 1, actions

    started = {e["server"] for e in await events_of(op, category="service", limit="1000")}
    assert {"auth", "chat", "archiver", "log"} <= started


async def test_the_query_api_filters_and_is_for_operators_only(aiohttp_client, settings):
    operator = new_id("op")
    client = await stack(aiohttp_client, settings, operator)
    op = await operator_of(client, operator)
    s = await run_scenario(client)
    alice, bob = s.alice.id, s.bob.id
    everything = await wait_for_events(op, len(ALICE), id=alice, limit="1000")

    signins = await events_of(op, server="auth", category="signin", id=alice)
    assert sorted(e["data"]["result"] for e in signins) == ["fail", "success"]
    assert {e["id"] for e in await events_of(op, id=bob, limit="1000")} == {bob}
    assert all(e["server"] == "chat" for e in await events_of(op, server="chat", id=alice))

    newest_first = [e["datetime"] for e in everything]
    assert newest_first == sorted(newest_first, reverse=True)
    one = await events_of(op, id=alice, limit="1")
    assert [e["event_id"] for e in one] == [everything[0]["event_id"]]

    # A window by time: [since, until) around the oldest and newest of alice's records.
    oldest = datetime.fromisoformat(everything[-1]["datetime"])
    newest = datetime.fromisoformat(everything[0]["datetime"])
    window = await events_of(
        op,
        id=alice,
        limit="1000",
        since=(oldest + timedelta(milliseconds=1)).isoformat(),
        until=newest.isoformat(),
    )
    inside = [e for e in everything if oldest < datetime.fromisoformat(e["datetime"]) < newest]
    assert {e["event_id"] for e in window} == {e["event_id"] for e in inside}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await events_of(op, id=alice, since=future) == []

    # Bad filters are refused with a reason, never a stack trace.
    for bad in ({"limit": "0"}, {"limit": "5000"}, {"since": "yesterday"}, {"colour": "red"}):
        r = await client.get("/log/events", params=bad, headers=op.auth)
        assert r.status == 422, (bad, await r.text())
    r = await client.get(
        "/log/events", params={"since": future, "until": oldest.isoformat()}, headers=op.auth
    )
    assert r.status == 422

    # Not an operator: 403, with what to do; no login: 401.
    r = await client.get("/log/events", headers=s.bob.auth)
    assert r.status == 403
    assert "auth.admins" in (await r.json())["error"]["message"]
    r = await client.get("/log/events")
    assert r.status == 401
    r = await client.get("/log/events", headers={"Authorization": "Bearer not-a-token"})
    assert r.status == 401
    # alice logged out: her token no longer opens anything, the log included.
    r = await client.get("/log/events", headers=s.alice.auth)
    assert r.status == 401


async def test_no_password_token_or_body_in_the_log_or_in_log_lines(
    aiohttp_client, settings, captured
):
    operator = new_id("op")
    client = await stack(aiohttp_client, settings, operator)
    op = await operator_of(client, operator)
    s = await run_scenario(client)
    await wait_for_events(op, len(ALICE), id=s.alice.id, limit="1000")
    stored = json.dumps(await events_of(op, limit="1000"))
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in captured.records]
    assert any(s.alice.id in line for line in lines), "the scan must see the services' lines"
    secrets = [*s.secrets, op.token, op.refresh]
    for secret in secrets:
        assert secret not in stored
        leaked = [line for line in lines if secret in line]
        assert not leaked, leaked[:3]
    for line in lines:
        fields = json.loads(line)
        assert not {"passwd", "password", "token", "ciphertext", "body"} & fields.keys(), line
