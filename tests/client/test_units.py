"""Pieces of the client core that need no server: backoff, the event hub, token timing."""

from __future__ import annotations

import random

from tui.client.backoff import Backoff
from tui.client.events import (
    EventHub,
    MessageShown,
    PresenceChanged,
    TypingChanged,
)
from tui.client.tokens import Tokens


def test_backoff_grows_to_its_cap_with_jitter_and_resets():
    b = Backoff(base=0.5, cap=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(12)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays), "jittered, not fixed steps"
    assert max(delays[6:]) > 4.0  # it did grow towards the cap
    b.reset()
    assert b.next_delay() <= 0.5


def test_tokens_refresh_at_three_quarters_and_never_print():
    t = Tokens.from_login(
        {"user": "alice", "token": "a.b.c", "refresh_token": "r" * 43, "expires_in": 900},
        now=1000.0,
    )
    assert t.refresh_due(1000.0) == 1000.0 + 675.0
    assert "a.b.c" not in repr(t) and "rrr" not in repr(t)


async def test_a_slow_subscriber_loses_typing_and_presence_never_messages():
    from datetime import UTC, datetime

    from tui.client import events as ev_mod

    hub = EventHub()
    limit = ev_mod.SOFT_LIMIT
    ts = datetime.now(UTC)
    async with hub.subscribe() as stream:
        for n in range(limit + 500):
            hub.emit(TypingChanged("r", "bob", n % 2 == 0))
            hub.emit(MessageShown("r", n + 1, f"m{n}", "bob", "D", ts, {"body": str(n)}))
        hub.emit(PresenceChanged("bob", True))
        hub.end()
        got = [e async for e in stream]
    shown = [e for e in got if isinstance(e, MessageShown)]
    assert [m.seq for m in shown] == list(range(1, limit + 501)), "every message, in order"
    assert len([e for e in got if isinstance(e, TypingChanged)]) < limit + 500


def test_a_failing_callback_does_not_stop_the_others():
    hub = EventHub()
    seen = []

    def broken(_):
        raise RuntimeError("boom")

    hub.on(broken)
    hub.on(seen.append)
    hub.emit(PresenceChanged("bob", True))
    assert seen == [PresenceChanged("bob", True)]
