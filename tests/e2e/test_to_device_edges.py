"""Rough edges of to-device traffic: a burst past the gateway's rate limit, and an emoji
check started before any Olm session exists with the other device."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.ws_helpers import client_factory
from tests.e2e.harness import befriend, party
from tui.client.events import VerificationUpdate
from tui.crypto import DeviceRef, NoSession

BURST = 20


def requested(p: Any) -> set[str]:
    return {
        e.sas.txn
        for e in p.seen.seen
        if isinstance(e, VerificationUpdate) and e.sas.state == "requested"
    }


async def test_a_to_device_burst_waits_out_the_rate_limit(aiohttp_client, make_settings, tmp_path):
    # 5 frames/s, 5 at once: the burst below is refused part way, but never 5 times in a row
    # (that would close the socket), because each refusal is waited out.
    server = await client_factory(aiohttp_client, make_settings)(rate_per_second=5, burst=5)
    alice, bob = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(alice, bob)
        assert bob.client.device_id is not None
        await alice.e2ee.refresh_devices([bob.id])
        await alice.e2ee.ensure_sessions([DeviceRef(bob.id, bob.client.device_id)])
        txns = {alice.e2ee.engine.sas_start(bob.id, bob.client.device_id) for _ in range(BURST)}
        await alice.e2ee.flush_to_device()  # raised "rate_limited" before
        assert alice.e2ee.rate_limited > 0, "the burst never met the limit: the test proves nothing"
        assert alice.e2ee.engine.pending_to_device() == []
        await bob.seen.until(lambda: requested(bob) >= txns, within=60)
    finally:
        await alice.close()
        await bob.close()


async def test_emoji_check_makes_the_olm_session_it_needs(server, tmp_path):
    alice, bob = await party(server, tmp_path), await party(server, tmp_path)
    try:
        await befriend(alice, bob)  # friends, no room: no key was ever shared, no session
        device = bob.client.device_id
        assert device is not None
        await alice.e2ee.refresh_devices([bob.id])
        ref = DeviceRef(bob.id, device)
        assert alice.e2ee.engine.missing_sessions([ref]) == [ref]
        with pytest.raises(NoSession):
            alice.e2ee.engine.sas_start(bob.id, device)  # the sans-I/O engine cannot claim
        assert alice.e2ee.engine.pending_to_device() == []  # and left nothing half-started
        txn = await alice.e2ee.sas_start(bob.id, device)  # the core claims a key first
        assert alice.e2ee.engine.missing_sessions([ref]) == []
        await bob.seen.until(lambda: txn in requested(bob), within=30)
        assert requested(bob) == {txn}  # the failed attempt never reached Bob
    finally:
        await alice.close()
        await bob.close()
