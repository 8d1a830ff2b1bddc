"""Disappearing messages: the timer rides in the encrypted content; clients enforce it and the
server blanks the ciphertext into a tombstone."""

from __future__ import annotations

import asyncio

from backend.chat.app import create_app
from tests.chat.ws_helpers import with_chat
from tests.e2e.harness import befriend, party
from tui.client.events import MessageExpired, MessageShown


async def test_a_disappearing_message_is_shown_then_gone_everywhere(
    aiohttp_client, settings, tmp_path
):
    server = await aiohttp_client(create_app(with_chat(settings, expiry_sweep_seconds=0.2)))
    a, b = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(a, b)
        room = (await a.client.rooms.direct(b.id))["id"]
        await a.client.send(room, {"body": "gone in 5 s"}, ttl=5)
        await a.client.send(room, {"body": "stays"})
        await b.seen.until(lambda: b.texts(room) == ["gone in 5 s", "stays"])
        assert b.seen.shown(room)[0].content["expires_in"] == 5
        [live, _] = await b.client.history(room, after=0)
        assert live.expires_at is not None

        await asyncio.sleep(5.5)
        # Even a copy of the ciphertext made in time no longer shows: the client's own timer.
        [late] = await b.client.cipher.open(live)  # type: ignore[union-attr]
        assert isinstance(late, MessageExpired) and late.seq == 1
        async with asyncio.timeout(20):
            while (await b.client.history(room, after=0))[0].kind != "expired":  # noqa: ASYNC110
                await asyncio.sleep(0.3)
        tomb, kept = await b.client.history(room, after=0)
        assert tomb.ciphertext == "" and tomb.seq == 1
        [gone] = await b.client.cipher.open(tomb)  # type: ignore[union-attr]
        assert isinstance(gone, MessageExpired)
        [still] = await b.client.cipher.open(kept)  # type: ignore[union-attr]
        assert isinstance(still, MessageShown) and still.text == "stays"
        assert [seq for seq, _ in b.store.history(room)] == [2]
    finally:
        await a.close()
        await b.close()
