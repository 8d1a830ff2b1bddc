"""Signing the membership log: only the actor, only once, only with a signature that verifies."""

from __future__ import annotations

from typing import Any

from backend.protocol.signing import membership_payload
from tests.auth.device_keys import TestDevice
from tests.chat.social_world import Person, World, make_world


async def register(world: World, who: Person) -> TestDevice:
    dev = TestDevice(who.id)
    r = await world.client.post("/auth/devices", json=dev.registration(), headers=who.auth)
    assert r.status == 201, await r.text()
    return dev


def signed(room: str, entry: dict[str, Any], dev: TestDevice) -> dict[str, Any]:
    payload = membership_payload(
        room,
        entry["seq"],
        entry["action"],
        entry["actor"],
        entry.get("target"),
        entry.get("role"),
        dev.device_id,
    )
    return {"seq": entry["seq"], "device": dev.device_id, "signature": dev.sign(payload)}


async def log_of(who: Person, room: str) -> list[dict[str, Any]]:
    return (await who.call("GET", f"/rooms/{room}/membership"))["entries"]


async def test_the_actor_signs_its_entries_and_members_hear_of_it(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    a_dev = await register(world, alice)
    entries = await log_of(alice, room)
    mine = [e for e in entries if e["actor"] == alice.id]
    assert [e["action"] for e in mine] == ["create", "invite"]

    body = {"signatures": [signed(room, e, a_dev) for e in mine]}
    out = await alice.call("POST", f"/rooms/{room}/membership/signatures", body)
    assert out == {"room": room, "signed": [e["seq"] for e in mine]}
    after = {e["seq"]: e for e in await log_of(bob, room)}
    for e in mine:
        assert after[e["seq"]]["device_id"] == a_dev.device_id
        assert after[e["seq"]]["signature"] == body["signatures"][mine.index(e)]["signature"]
    assert world.seen_by(bob, type="log_signed", room=room)[-1]["seqs"] == [e["seq"] for e in mine]

    # Sending the same again is harmless; a different signature for a signed entry is not.
    again = await alice.call("POST", f"/rooms/{room}/membership/signatures", body)
    assert again["signed"] == out["signed"]
    other = await register(world, alice)
    code = await alice.error(
        "POST",
        f"/rooms/{room}/membership/signatures",
        {"signatures": [signed(room, mine[0], other)]},
        expect=409,
    )
    assert code == "conflict"


async def test_nobody_signs_for_someone_else_or_with_a_bad_signature(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob, mallory = await world.person(), await world.person(), await world.person()
    room = await world.group(alice, bob)
    b_dev, a_dev = await register(world, bob), await register(world, alice)
    entries = await log_of(bob, room)
    create = next(e for e in entries if e["action"] == "create")
    join = next(e for e in entries if e["action"] == "join")

    url = f"/rooms/{room}/membership/signatures"
    # Bob cannot sign alice's entry, even with a valid signature of his own device.
    code = await bob.error("POST", url, {"signatures": [signed(room, create, b_dev)]}, expect=403)
    assert code == "forbidden"
    # Alice's device key over a different entry does not verify for this one.
    wrong = signed(room, join | {"actor": bob.id}, b_dev) | {"seq": join["seq"]}
    wrong["signature"] = signed(room, create, a_dev)["signature"]
    assert await bob.error("POST", url, {"signatures": [wrong]}, expect=422) == "bad_signature"
    # A device bob does not own is unknown to him.
    code = await bob.error("POST", url, {"signatures": [signed(room, join, a_dev)]}, expect=404)
    assert code == "not_found"
    # Someone with no change in the room cannot even learn it exists.
    m_dev = await register(world, mallory)
    code = await mallory.error("POST", url, {"signatures": [signed(room, join, m_dev)]}, expect=404)
    assert code == "not_found"
    # Nothing of the failed calls was stored.
    assert not [e for e in await log_of(bob, room) if "signature" in e]
    # Malformed bodies are refused with the field named.
    bad = {"signatures": [{"seq": 0, "device": "x", "signature": "y"}]}
    assert await bob.error("POST", url, bad, expect=422) == "invalid"
    assert (await bob.call("POST", url, {"signatures": [signed(room, join, b_dev)]}))["signed"]


async def test_a_member_who_left_still_signs_the_leave(aiohttp_client, settings):
    world = await make_world(aiohttp_client, settings)
    alice, bob = await world.person(), await world.person()
    room = await world.group(alice, bob)
    b_dev = await register(world, bob)
    await bob.call("POST", f"/rooms/{room}/leave", {"confirm": True})
    leave = (await log_of(alice, room))[-1]
    assert leave["action"] == "leave" and leave["actor"] == bob.id
    out = await bob.call(
        "POST", f"/rooms/{room}/membership/signatures", {"signatures": [signed(room, leave, b_dev)]}
    )
    assert out["signed"] == [leave["seq"]]
