"""Membership is the boundary: outsiders, kicked members and blocked users get nothing.

Every REST route and WebSocket frame that names a room is tried by a non-member with the
real room id, guessed ids and fuzzed ids (hypothesis); none may succeed, reveal members or
fail with a 5xx.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.common.tokens import TokenError, TokenVerifier, keys_by_kid
from backend.common.typedefs import AUTH_SERVICE
from tests.security.helpers import befriend, group, new_user, report

pytestmark = pytest.mark.security

ROOM_ROUTES = [
    ("GET", "/chat/rooms/{r}", None),
    ("GET", "/chat/rooms/{r}/members", None),
    ("GET", "/chat/rooms/{r}/membership", None),
    ("POST", "/chat/rooms/{r}/invites", {"user": "{friend}"}),
    ("POST", "/chat/rooms/{r}/join", None),
    ("POST", "/chat/rooms/{r}/decline", None),
    ("POST", "/chat/rooms/{r}/leave", {"confirm": True}),
    ("POST", "/chat/rooms/{r}/kick", {"user": "{member}"}),
    ("POST", "/chat/rooms/{r}/role", {"user": "{member}", "role": "admin"}),
    (
        "POST",
        "/chat/rooms/{r}/membership/signatures",
        {"signatures": [{"seq": 1, "device": "DEVICE01", "signature": "A" * 86}]},
    ),
    ("DELETE", "/chat/rooms/{r}", {"confirm": True}),
]


def guessed_ids(real: str) -> list[str]:
    return [
        "r_" + secrets.token_urlsafe(16)[:22],
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        real.upper(),
        real + "x",
        "r_" + "A" * 22,
        "1",
        "%2e%2e",
        "r_" + "\u00e9" * 22,
    ]


async def outsider_rest(
    outsider: Any, room: str, friend: str, member: str, answers: dict[str, set[str]]
) -> list[str]:
    """Every room route as ``outsider``; the ones that did not refuse with 404."""
    leaks = []
    for method, path, body in ROOM_ROUTES:
        if body is not None:
            body = {
                k: (v.format(friend=friend, member=member) if isinstance(v, str) else v)
                for k, v in body.items()
            }
        status, data = await outsider.call(method, path.format(r=room), body)
        if well_formed(room):
            answers.setdefault(f"{method} {path}", set()).add(f"{status} {data}".replace(room, "R"))
        if status != 404 and not (room == "%2e%2e" and status == 405):  # yarl: /chat/invites
            leaks.append(f"{method} {path} {room!r}: {status} {data}")
        if member in str(data):
            leaks.append(f"{method} {path}: names a member")
    return leaks


def well_formed(room: str) -> bool:
    return re.fullmatch(r"r_[A-Za-z0-9_-]{22}", room) is not None


async def outsider_frames(peer: Any, room: str, answers: dict[str, set[str]]) -> list[str]:
    leaks = []
    asks = [
        ("send", {"room": room, "msg_id": uuid.uuid4().hex, "ciphertext": "AwgAEh", "kind": "m"}),
        ("history", {"room": room, "limit": 10}),
        ("typing", {"room": room, "active": True}),
        ("read", {"room": room, "seq": 1}),
    ]
    for kind, fields in asks:
        reply = await peer.ask(kind, **fields)
        if well_formed(room):
            answers.setdefault(kind, set()).add(str(reply.get("error")).replace(room, "R"))
        if reply["success"]:
            leaks.append(f"{kind} {room!r}: {reply}")
        elif reply["error"]["code"] not in ("not_member", "forbidden", "bad_frame", "not_found"):
            leaks.append(f"{kind} {room!r}: unexpected {reply['error']['code']}")
    reply = await peer.ask("sync", rooms=[room])
    if not reply["success"] or reply["result"]["rooms"]:
        if reply["success"] or reply["error"]["code"] != "bad_frame":
            leaks.append(f"sync {room!r}: {reply}")
    return leaks


async def test_a_non_member_gets_nothing_from_a_room(stack):
    client = await stack()
    alice, bob, mallory, friend = [await new_user(client) for _ in range(4)]
    await befriend(alice, bob)
    await befriend(mallory, friend)
    room = await group(alice, bob)
    peer = await mallory.socket()
    await peer.drain(0.1)
    leaks: list[str] = []
    tried = 0
    answers: dict[str, set[str]] = {}  # per action: every distinct answer to a well-formed id
    for candidate in [room, *guessed_ids(room)]:
        leaks += await outsider_rest(mallory, candidate, friend.id, bob.id, answers)
        leaks += await outsider_frames(peer, candidate, answers)
        tried += 1
    oracles = [f"{action}: {sorted(seen)}" for action, seen in answers.items() if len(seen) > 1]
    assert oracles == [], "\n".join(oracles)
    status, listing = await mallory.call("GET", "/chat/rooms")
    assert status == 200 and room not in str(listing)
    sync = await peer.ask("sync")
    assert room not in str(sync)
    # And nothing of the room reached the outsider's socket while members were busy.
    member = await bob.socket()
    await member.ask("send", room=room, msg_id=uuid.uuid4().hex, ciphertext="AwgBEh", kind="m")
    pushed = [f for f in await peer.drain(0.5) if room in str(f)]
    report(
        "non-member",
        room_ids=tried,
        rest_calls=tried * len(ROOM_ROUTES),
        frames=tried * 5,
        leaks=len(leaks) + len(pushed),
    )
    assert leaks == [] and pushed == [], "\n".join(leaks)


@pytest.mark.parametrize("make_settings", ["embedded"], indirect=True)
async def test_fuzzed_room_ids_never_reach_a_room(stack):
    client = await stack()
    alice, bob, mallory = [await new_user(client) for _ in range(3)]
    await befriend(alice, bob)
    room = await group(alice, bob)
    peer = await mallory.socket()
    seen = {"n": 0, "5xx": 0}
    bad: list[str] = []

    ids = st.one_of(
        st.text(min_size=1, max_size=70),
        st.from_regex(r"\Ar_[A-Za-z0-9_-]{20,24}\Z"),
        st.just(room).map(lambda r: r[: len(r) // 2]),
    )

    async def probe(rid: str) -> None:
        seen["n"] += 1
        if rid == room:
            return
        path = quote(rid, safe="")
        for method, suffix in (("GET", ""), ("GET", "/members"), ("POST", "/join")):
            status, _ = await mallory.call(method, f"/chat/rooms/{path}{suffix}")
            if status >= 500:
                seen["5xx"] += 1
            if status < 400:
                bad.append(f"{method} {rid!r}{suffix}: {status}")
        reply = await peer.ask("history", room=rid, limit=5)
        if reply["success"]:
            bad.append(f"history {rid!r}")
        reply = await peer.ask("send", room=rid, msg_id=uuid.uuid4().hex, ciphertext="Aw", kind="m")
        if reply["success"]:
            bad.append(f"send {rid!r}")

    # Hypothesis runs sync tests: it generates the ids here, and each is probed on this loop.
    results: list[str] = []

    @settings(
        max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(rid=ids)
    def collect(rid: str) -> None:
        results.append(rid)

    collect()
    for rid in results:
        await probe(rid)
    report(
        "fuzzed room ids",
        examples=seen["n"],
        calls=seen["n"] * 5,
        accepted=len(bad),
        server_errors=seen["5xx"],
    )
    assert bad == [] and seen["5xx"] == 0


async def test_a_kicked_member_receives_nothing_after_the_kick(stack):
    client = await stack()
    alice, bob, carol = [await new_user(client) for _ in range(3)]
    await befriend(alice, bob)
    await befriend(alice, carol)
    room = await group(alice, bob, carol)
    bob_ws, alice_ws = await bob.socket(), await alice.socket()
    before = uuid.uuid4().hex
    assert (await alice_ws.ask("send", room=room, msg_id=before, ciphertext="AwgBEh", kind="m"))[
        "success"
    ]
    await alice.ok("POST", f"/chat/rooms/{room}/kick", {"user": bob.id})
    after = [uuid.uuid4().hex for _ in range(5)]
    for msg_id in after:
        assert (
            await alice_ws.ask("send", room=room, msg_id=msg_id, ciphertext="AwgCEh", kind="m")
        )["success"]
    await alice_ws.ask("typing", room=room, active=True)
    carol_ws = await carol.socket()
    for _ in range(100):  # archiving is asynchronous: wait until they are in history
        history = await carol_ws.ask("history", room=room, limit=50)
        if {m["msg_id"] for m in history["result"]["messages"]} >= set(after):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the messages sent after the kick were never archived")
    frames = await bob_ws.drain(1.0)
    leaked = [f for f in frames if f.get("msg_id") in after or f.get("type") in ("typing", "read")]
    kicks = [f for f in frames if f.get("type") == "member_event" and f.get("action") == "kick"]
    assert not (await bob_ws.ask("history", room=room, limit=50))["success"]
    report(
        "kicked member",
        sent_after_kick=len(after),
        received_after_kick=len(leaked),
        kick_events=len(kicks),
    )
    assert leaked == [] and len(kicks) == 1


async def test_a_blocked_user_cannot_reach_the_blocker(stack):
    client = await stack()
    alice, mallory, carol = [await new_user(client) for _ in range(3)]
    await befriend(alice, mallory)
    await befriend(mallory, carol)
    direct = (await mallory.ok("POST", "/chat/rooms/direct", {"user": alice.id}, expect=201))["id"]
    alice_ws = await alice.socket()
    await alice.ok("POST", "/chat/blocks", {"user": mallory.id})
    await alice_ws.drain(0.3)
    mallory_room = await group(mallory, carol)
    paths: dict[str, Any] = {}
    paths["friend request"] = (
        await mallory.call("POST", "/chat/friends/requests", {"user": alice.id})
    )[0]
    paths["open 1:1"] = (await mallory.call("POST", "/chat/rooms/direct", {"user": alice.id}))[0]
    paths["invite"] = (
        await mallory.call("POST", f"/chat/rooms/{mallory_room}/invites", {"user": alice.id})
    )[0]
    m_ws = await mallory.socket()  # presence: mallory comes online and goes again
    sent = await m_ws.ask(
        "send", room=direct, msg_id=uuid.uuid4().hex, ciphertext="AwgDEh", kind="m"
    )
    paths["message in the old 1:1"] = "accepted" if sent["success"] else sent["error"]["code"]
    await m_ws.ask("typing", room=direct, active=True)
    td = await m_ws.ask(
        "send_to_device",
        user=alice.id,
        device=alice.device.device_id,
        msg_id=uuid.uuid4().hex,
        ciphertext="AwoDEh",
    )
    paths["to-device"] = "queued" if td["success"] else td["error"]["code"]
    await m_ws.ws.close()
    received = [f for f in await alice_ws.drain(1.0) if mallory.id in str(f)]
    report("blocked user", paths=paths, frames_reaching_blocker=len(received))
    assert paths["friend request"] == 403 and paths["open 1:1"] == 403 and paths["invite"] == 403
    assert paths["to-device"] == "forbidden"
    assert received == [], received


async def test_room_admin_actions_and_the_log_audience_refuse_others(stack):
    client = await stack()
    alice, bob, carol = [await new_user(client) for _ in range(3)]
    await befriend(alice, bob)
    await befriend(alice, carol)
    room = await group(alice, bob, carol)
    refused = {
        "kick": (await bob.call("POST", f"/chat/rooms/{room}/kick", {"user": carol.id}))[0],
        "promote": (
            await bob.call("POST", f"/chat/rooms/{room}/role", {"user": carol.id, "role": "admin"})
        )[0],
        "delete": (await bob.call("DELETE", f"/chat/rooms/{room}", {"confirm": True}))[0],
    }
    assert set(refused.values()) == {403}, refused
    # The log service's admin-only queries accept only tokens with aud sealchat:log, which
    # auth gives to accounts in auth.admins only.
    issuer = client.app[AUTH_SERVICE].issuer
    log_verifier = TokenVerifier(
        lambda: keys_by_kid(issuer.jwks()), issuer="sealchat", service="log"
    )
    with pytest.raises(TokenError, match="not issued for this service"):
        log_verifier.verify(bob.token)
    report("admin-only", room_admin_actions_refused=len(refused), log_aud_for_users=False)
