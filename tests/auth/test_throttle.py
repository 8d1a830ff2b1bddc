"""The login throttle's refusal says how long is left, on an injected clock."""

from __future__ import annotations

import pytest

from backend.auth.throttle import LoginThrottle
from backend.common.errors import ApiError
from backend.common.settings import AuthSettings
from backend.protocol.errors import ErrorCode
from backend.stores.ephemeral.memory import MemoryKeyValue

WINDOW = 900


def throttle_at(now: list[float], kv: MemoryKeyValue | None = None) -> LoginThrottle:
    settings = AuthSettings(
        throttle_window_seconds=WINDOW,
        throttle_per_account_ip=3,
        throttle_per_ip=5,
        throttle_per_account=100,
    )
    kv = kv if kv is not None else MemoryKeyValue(clock=lambda: now[0])
    return LoginThrottle(kv, settings)


async def refusal(throttle: LoginThrottle, account: str, address: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await throttle.check(account, address)
    assert caught.value.code == ErrorCode.THROTTLED
    return caught.value


async def test_retry_after_is_the_time_left_in_the_window_not_the_window() -> None:
    now = [1000.0]
    throttle = throttle_at(now)
    for _ in range(3):
        await throttle.failed("alice", "203.0.113.7")
    now[0] += 600.4  # the window began at the first failure
    refused = await refusal(throttle, "alice", "203.0.113.7")
    assert refused.headers == {"Retry-After": "300"}
    assert refused.message == "too many failed logins: try again in 5 min"
    now[0] += 299.0
    assert (await refusal(throttle, "alice", "203.0.113.7")).headers == {"Retry-After": "1"}
    now[0] += 1.0
    await throttle.check("alice", "203.0.113.7")  # the window is over
    await throttle.check("alice", "198.51.100.20")  # elsewhere it never began


async def test_retry_after_waits_for_the_last_window_that_is_over_its_limit() -> None:
    now = [0.0]
    throttle = throttle_at(now)
    for _ in range(3):
        await throttle.failed("alice", "203.0.113.7")  # alice's window from this address
    now[0] = 500.0
    for _ in range(2):
        await throttle.failed("bob", "203.0.113.7")  # the address's window began at 0 too
    now[0] = 510.0
    # Both alice|address (3 ≥ 3) and the address (5 ≥ 5) are over; both began at 0.
    assert (await refusal(throttle, "alice", "203.0.113.7")).headers == {"Retry-After": "390"}
    # bob|address is under its limit but the address is not: the address's window decides.
    refused = await refusal(throttle, "bob", "203.0.113.7")
    assert refused.headers == {"Retry-After": "390"}
    assert refused.message == "too many failed logins: try again in 6 min 30 s"


async def test_a_counter_that_expires_between_the_reads_still_says_one_second() -> None:
    now = [0.0]
    kv = MemoryKeyValue(clock=lambda: now[0])
    throttle = throttle_at(now, kv)
    for _ in range(3):
        await throttle.failed("alice", "203.0.113.7")
    real = kv.seconds_left

    async def expired_meanwhile(key: str) -> int:
        now[0] = WINDOW  # the window ends after get_int and before the TTL read
        return await real(key)

    kv.seconds_left = expired_meanwhile  # type: ignore[method-assign]
    refused = await refusal(throttle, "alice", "203.0.113.7")
    assert refused.headers == {"Retry-After": "1"}
    assert refused.message == "too many failed logins: try again in 1 s"
