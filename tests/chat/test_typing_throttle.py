"""The typing throttle on its own, with a clock the test moves."""

from __future__ import annotations

from backend.chat.typing_throttle import TypingThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_start_per_interval_per_user_and_room():
    clock = Clock()
    t = TypingThrottle(3.0, clock=clock)
    assert t.allow("ann", "r1", True)
    assert not t.allow("ann", "r1", True)
    assert t.allow("ann", "r2", True), "another room has its own budget"
    assert t.allow("bob", "r1", True), "another user too"
    clock.now += 3.0
    assert t.allow("ann", "r1", True)


def test_a_stop_passes_only_after_a_start_that_went_out():
    t = TypingThrottle(3.0, clock=Clock())
    assert not t.allow("ann", "r1", False), "nothing was shown, nothing to stop"
    assert t.allow("ann", "r1", True)
    assert t.allow("ann", "r1", False)
    assert not t.allow("ann", "r1", False)
    assert t.allow("ann", "r1", True), "a new start right after a stop is shown"


def test_memory_is_bounded():
    t = TypingThrottle(3.0, max_entries=2, clock=Clock())
    for room in ("r1", "r2", "r3"):
        assert t.allow("ann", room, True)
    # r1 was forgotten: a start there goes out again at once.
    assert t.allow("ann", "r1", True)
    assert not t.allow("ann", "r3", True)
