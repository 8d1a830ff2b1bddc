"""The gateway's watch: sockets looked at in one-second slots, one timer per slot."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import pytest

from backend.chat.gateway.watch import Watch


class Item:
    """A watched thing that records when it was looked at and answers with ``plan``."""

    def __init__(self, name: str, plan: Callable[[float], float | None]) -> None:
        self.name = name
        self.plan = plan
        self.watch_slot: int | None = None
        self.looks: list[float] = []

    def look(self, now: float) -> float | None:
        self.looks.append(now)
        return self.plan(now)

    def __repr__(self) -> str:
        return self.name


async def test_items_are_looked_at_after_their_time_within_a_second_on_one_timer_per_slot():
    loop = asyncio.get_running_loop()
    watch = Watch()
    start = loop.time()
    items = [Item(f"i{n}", lambda now: None) for n in range(20)]
    for n, item in enumerate(items):
        watch.at(item, start + 0.5 + n * 0.03)  # 0.5 to 1.07 s from now: two slots at most
    assert len(watch) == 20 and watch.timers() <= 2
    await asyncio.sleep(2.2)
    for n, item in enumerate(items):
        assert len(item.looks) == 1
        asked = start + 0.5 + n * 0.03
        assert asked <= item.looks[0] < asked + 1.1
        assert item.watch_slot is None
    assert len(watch) == 0 and watch.timers() == 0


async def test_an_item_says_when_it_is_next_looked_at_and_none_ends_it():
    loop = asyncio.get_running_loop()
    watch = Watch()
    item = Item("twice", lambda now: now + 0.5 if len(item.looks) < 3 else None)
    watch.at(item, loop.time())
    await asyncio.sleep(3.4)  # the first within a second, then one a second (0.5, rounded up)
    assert len(item.looks) == 3
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(item.looks))
    assert len(watch) == 0 and watch.timers() == 0


async def test_a_time_already_past_is_looked_at_in_the_next_second_not_at_once():
    loop = asyncio.get_running_loop()
    watch = Watch()
    item = Item("late", lambda now: None)
    watch.at(item, loop.time() - 5)
    assert item.looks == []  # never called from inside ``at``
    await asyncio.sleep(1.1)
    assert len(item.looks) == 1


async def test_forgetting_takes_an_item_out_and_stops_an_empty_slots_timer():
    loop = asyncio.get_running_loop()
    watch = Watch()
    kept, forgotten = Item("kept", lambda now: None), Item("gone", lambda now: None)
    watch.at(kept, loop.time() + 0.2)
    watch.at(forgotten, loop.time() + 3.2)
    assert watch.timers() == 2
    watch.forget(forgotten)
    watch.forget(forgotten)  # twice is harmless
    assert watch.timers() == 1 and len(watch) == 1 and forgotten.watch_slot is None
    watch.at(kept, loop.time() + 0.1)  # asking again moves it: still one entry
    assert len(watch) == 1
    await asyncio.sleep(1.3)
    assert len(kept.looks) == 1 and forgotten.looks == []


async def test_an_item_that_fails_is_logged_and_dropped_and_the_others_are_looked_at(caplog):
    loop = asyncio.get_running_loop()
    watch = Watch()

    def fail(now: float) -> float | None:
        raise RuntimeError("boom")

    bad, good = Item("bad", fail), Item("good", lambda now: None)
    watch.at(bad, loop.time() + 0.1)
    watch.at(good, loop.time() + 0.1)
    with caplog.at_level(logging.ERROR, logger="sealchat.gateway"):
        await asyncio.sleep(1.2)
    assert len(bad.looks) == 1 and len(good.looks) == 1
    assert "looking at a socket failed" in caplog.text
    assert len(watch) == 0


@pytest.mark.parametrize("offset", [0.0, 0.999, 1.0])
async def test_never_before_the_time_asked(offset):
    loop = asyncio.get_running_loop()
    watch = Watch()
    item = Item("on time", lambda now: None)
    asked = loop.time() + offset
    watch.at(item, asked)
    await asyncio.sleep(offset + 1.1)
    assert len(item.looks) == 1 and item.looks[0] >= asked
