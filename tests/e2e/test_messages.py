"""Messages through the real server with the real crypto: who can read what."""

from __future__ import annotations

from tests.e2e.harness import befriend, group, party


async def test_one_to_one_messages_decrypt_both_ways(server, tmp_path):
    alice, bob = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(alice, bob)
        room = (await alice.client.rooms.direct(bob.id))["id"]
        await alice.client.send(room, {"body": "hello bob"})
        await bob.seen.until(lambda: bob.texts(room) == ["hello bob"])
        await bob.client.send(room, {"body": "hi alice"})
        await alice.seen.until(lambda: alice.texts(room) == ["hello bob", "hi alice"])
        assert alice.latest(room).sender == bob.id
        assert alice.alerts() == [] and bob.alerts() == []
    finally:
        await alice.close()
        await bob.close()


async def test_group_messages_decrypt_for_every_member(server, tmp_path):
    a, b, c = [await party(server, tmp_path) for _ in range(3)]
    try:
        room = await group(a, b, c)
        await a.client.send(room, {"body": "from a"})
        await b.client.send(room, {"body": "from b"})
        await c.client.send(room, {"body": "from c"})
        for p in (a, b, c):
            await p.seen.until(lambda p=p: len(p.texts(room)) == 3)
            assert p.texts(room) == ["from a", "from b", "from c"]
            assert p.undecryptable(room) == [] or all(u.retryable for u in p.undecryptable(room))
    finally:
        for p in (a, b, c):
            await p.close()


async def test_emoji_verification_marks_both_devices_verified(server, tmp_path):
    from tui.client.events import VerificationUpdate

    alice, bob = await party(server, tmp_path), await party(server, tmp_path)

    def updates(p, state):
        return [
            e.sas for e in p.seen.seen if isinstance(e, VerificationUpdate) and e.sas.state == state
        ]

    try:
        await befriend(alice, bob)
        assert bob.client.device_id is not None
        txn = await alice.e2ee.sas_start(bob.id, bob.client.device_id)
        await bob.seen.until(lambda: updates(bob, "requested"))
        await bob.e2ee.sas_accept(txn)
        await alice.seen.until(lambda: updates(alice, "keys_exchanged"))
        await bob.seen.until(lambda: updates(bob, "keys_exchanged"))
        a_emoji, b_emoji = alice.e2ee.engine.sas_emoji(txn), bob.e2ee.engine.sas_emoji(txn)
        assert a_emoji is not None and len(a_emoji) == 7 and a_emoji == b_emoji
        done = [*await alice.e2ee.sas_confirm(txn), *await bob.e2ee.sas_confirm(txn)]
        for p in (alice, bob):
            await p.seen.until(
                lambda p=p: (
                    updates(p, "verified")
                    or any(e.sas.state == "verified" for e in done if p is alice or p is bob)
                )
            )
        [a_view] = [d for d in alice.e2ee.engine.devices_of(bob.id) if not d.removed]
        [b_view] = [d for d in bob.e2ee.engine.devices_of(alice.id) if not d.removed]
        assert a_view.verified and b_view.verified
    finally:
        await alice.close()
        await bob.close()
