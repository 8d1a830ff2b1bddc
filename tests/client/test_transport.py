"""The client core over real sockets: order, once-only, outbox resends, gap fills, tokens."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

from backend.chat.gateway.connection import Connection as ServerConnection
from backend.protocol.errors import CloseCode
from backend.protocol.frames import Resync
from tests.chat.ws_helpers import registry
from tests.client.harness import Recorder, group_of, open_client, signup
from tui.client.client import new_msg_id
from tui.client.events import ConnectionState
from tui.client.store import Outgoing


def server_sockets(server: Any, user: str) -> list[ServerConnection]:
    return list(registry(server).connections_of(user))


async def test_messages_arrive_once_in_order_for_every_member(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        alice.connect()
        bob.connect()
        await bob.wait_synced()
        ids = [await alice.send(room, {"body": f"hello {n}"}) for n in range(3)]
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 3)
        got = bob_seen.shown(room)
        assert [m.msg_id for m in got] == ids
        assert [m.seq for m in got] == [1, 2, 3]
        assert [m.text for m in got] == ["hello 0", "hello 1", "hello 2"]
        assert {m.sender for m in got} == {a_id}
        assert bob.store.last_seq(room) == 3
        assert len(alice.outbox) == 0


async def test_an_outbox_left_by_a_crash_is_sent_once_on_the_next_run(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with bob:
        room = await group_of(alice, bob)
        bob.connect()
        await bob.wait_synced()
        # Alice sends one message and "loses" its ack: it stays in the outbox as well.
        alice.connect()
        acked = await alice.send(room, {"body": "acked, ack lost"})
        cipher = alice.cipher
        assert cipher is not None
        lost = Outgoing(acked, room, await cipher.seal(room, {"body": "acked, ack lost"}))
        alice.outbox.queue(lost)
        # And queues another she never got to send before the process ended.
        never_sent = Outgoing(new_msg_id(), room, await cipher.seal(room, {"body": "queued"}))
        alice.outbox.queue(never_sent)
        store_path = alice.store.path  # type: ignore[attr-defined]
        await alice.close()
        alice.store.close()  # type: ignore[attr-defined]

        again, _ = await open_client(server, tmp_path, a_id, login=False, device=None)
        assert again.store.path == store_path  # type: ignore[attr-defined]
        assert [o.msg_id for o in again.outbox.pending()] == [acked, never_sent.msg_id]
        # The device id is the one alice registered (kept with the profile by the caller).
        again.device_id = alice.device_id
        async with again:
            again.connect()
            await again.wait_synced()
            assert len(again.outbox) == 0
            await bob_seen.until(lambda: len(bob_seen.shown(room)) == 2)
            history = await bob.history(room, after=0)
        assert [m.msg_id for m in history] == [acked, never_sent.msg_id]
        assert [m.msg_id for m in bob_seen.shown(room)] == [acked, never_sent.msg_id]


async def test_a_dropped_socket_mid_send_is_resent_and_shown_once(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, alice_seen = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        alice.connect()
        bob.connect()
        await alice.wait_synced()
        await bob.wait_synced()
        sends = []
        for n in range(5):
            # Drop alice's socket under her while she sends.
            for conn in server_sockets(server, a_id):
                conn.close(CloseCode.GOING_AWAY, "test drop", discard=True)
            sends.append(asyncio.create_task(alice.send(room, {"body": f"m{n}"})))
            await asyncio.sleep(0)
        ids = await asyncio.wait_for(asyncio.gather(*sends), 60)
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 5)
        await asyncio.sleep(0.5)  # a late duplicate ring would show up now
        shown = bob_seen.shown(room)
        assert sorted(m.msg_id for m in shown) == sorted(ids)
        assert [m.seq for m in shown] == [1, 2, 3, 4, 5]
        assert len(alice.outbox) == 0
        states = [e.state for e in alice_seen.seen if isinstance(e, ConnectionState)]
        assert "offline" in states and states.count("online") >= 2


async def test_missed_live_frames_are_filled_from_history(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        alice.connect()
        bob.connect()
        await bob.wait_synced()
        [bob_socket] = server_sockets(server, b_id)
        enqueue = ServerConnection.enqueue_frame

        def lossy(conn: ServerConnection, frame: bytes) -> bool:
            if conn is bob_socket and b'"type":"message"' in frame:
                return True  # the network loses bob's message frames
            return enqueue(conn, frame)

        with patch.object(ServerConnection, "enqueue_frame", lossy):
            for n in range(3):
                await alice.send(room, {"body": f"lost {n}"})
            await asyncio.sleep(0.5)
            assert bob_seen.shown(room) == []
        await alice.send(room, {"body": "arrives live"})  # seq 4: bob sees the gap
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 4)
        assert [m.text for m in bob_seen.shown(room)] == [
            "lost 0",
            "lost 1",
            "lost 2",
            "arrives live",
        ]
        # A resync frame with nothing missing changes nothing.
        registry(server).push([b_id], Resync(reason="test"))
        await alice.send(room, {"body": "after resync"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 5)
        assert [m.seq for m in bob_seen.shown(room)] == [1, 2, 3, 4, 5]


async def test_a_client_catches_up_after_being_offline(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        alice.connect()
        bob.connect()
        await bob.wait_synced()
        await alice.send(room, {"body": "one"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 1)
        # Bob's socket goes; alice keeps talking; bob is told to resync once he is back.
        for conn in server_sockets(server, b_id):
            conn.close(CloseCode.GOING_AWAY, "test drop", discard=True)
        for n in range(3):
            await alice.send(room, {"body": f"while away {n}"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 4)
        assert [m.seq for m in bob_seen.shown(room)] == [1, 2, 3, 4]


async def test_a_4001_close_refreshes_the_token_and_reconnects(server, tmp_path):
    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        alice.connect()
        bob.connect()
        await bob.wait_synced()
        before = bob.keeper.tokens
        assert before is not None
        for conn in server_sockets(server, b_id):
            conn.close(CloseCode.AUTH_FAILED, "token expired: refresh it and reconnect")
        await alice.send(room, {"body": "after refresh"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 1)
        after = bob.keeper.tokens
        assert after is not None and after.refresh != before.refresh
        assert after.access != before.access
        # The new pair is what the profile holds (sealed): a restart would use it.
        assert bob.keeper._store.load() == after  # type: ignore[attr-defined]
        # The spent refresh token is dead; the session lives on.
        assert (await bob.api.rooms())[0]["id"] == room


async def test_logout_elsewhere_ends_the_client_cleanly(server, tmp_path):
    a_id = await signup(server)
    alice, alice_seen = await open_client(server, tmp_path, a_id)
    async with alice:
        alice.connect()
        await alice.wait_synced()
        await alice.api.logout()  # the session ends: the server closes the socket (4001)
        await alice_seen.until(
            lambda: any(
                isinstance(e, ConnectionState) and e.state == "logged_out" for e in alice_seen.seen
            )
        )
        assert not alice.logged_in


async def test_the_token_is_refreshed_before_it_expires(aiohttp_client, make_settings, tmp_path):
    from backend.chat.app import create_app
    from tests.client.harness import FAST_KDF, PASSWORD, PlainCipher, base_url
    from tui.client.client import ChatClient
    from tui.client.tokens import SealedTokens
    from tui.crypto.store import LocalStore

    server = await aiohttp_client(create_app(make_settings(access_ttl_seconds=30)))
    uid = await signup(server)
    store = LocalStore.open(tmp_path / "s.sqlite3", "pass", kdf=FAST_KDF)
    # Refresh after a tenth of the 30 s lifetime instead of three quarters, to keep this short.
    client = ChatClient(base_url(server), store, SealedTokens(store), refresh_fraction=0.1)
    client.cipher = PlainCipher()
    seen = Recorder(client)
    async with client:
        await client.login(uid, PASSWORD)
        first = client.keeper.tokens
        assert first is not None and first.expires_at - first.issued_at == 30
        client.connect()
        await client.wait_synced()
        async with asyncio.timeout(30):
            while client.keeper.tokens == first:  # noqa: ASYNC110 (no event for a refresh)
                await asyncio.sleep(0.2)
        # Refreshed ahead of time: REST keeps working and the socket was never refused.
        assert await client.api.rooms() == []
        assert not [
            e
            for e in seen.seen
            if isinstance(e, ConnectionState) and e.state != "online" and e.state != "connecting"
        ]
    store.close()


async def test_typing_read_and_presence_reach_the_ui_as_events(server, tmp_path):
    from tui.client.events import PresenceChanged, ReadMoved, TypingChanged

    a_id, b_id = await signup(server), await signup(server)
    alice, _ = await open_client(server, tmp_path, a_id)
    bob, bob_seen = await open_client(server, tmp_path, b_id)
    async with alice, bob:
        room = await group_of(alice, bob)
        bob.connect()
        await bob.wait_synced()
        alice.connect()
        await alice.wait_synced()
        await bob_seen.until(lambda: PresenceChanged(a_id, True) in bob_seen.seen)
        assert await alice.typing(room, True) is True
        await bob_seen.until(lambda: TypingChanged(room, a_id, True) in bob_seen.seen)
        await alice.send(room, {"body": "read me"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 1)
        assert await bob.mark_read(room, 1) == 1
        alice_seen = Recorder(alice)
        await bob.mark_read(room, 1)  # no change: no event
        await alice.send(room, {"body": "two"})
        await bob_seen.until(lambda: len(bob_seen.shown(room)) == 2)
        assert await bob.mark_read(room, 2) == 2
        await alice_seen.until(lambda: ReadMoved(room, b_id, 2) in alice_seen.seen)
        assert ReadMoved(room, b_id, 1) not in alice_seen.seen
