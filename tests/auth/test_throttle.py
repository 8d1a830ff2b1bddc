"""The login throttle's refusal says how long is left, on an injected clock."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from backend.auth.throttle import LoginThrottle, _duration
from backend.common.errors import ApiError
from backend.common.settings import AuthSettings
from backend.protocol.errors import ErrorCode
from backend.stores.ephemeral.memory import MemoryKeyValue
from backend.stores.ephemeral.port import KeyValue
from backend.stores.ephemeral.redis import RedisKeyValue

WINDOW = 900
SETTINGS = AuthSettings(
    throttle_window_seconds=WINDOW,
    throttle_per_account_ip=3,
    throttle_per_ip=5,
    throttle_per_account=100,
)


def throttle_at(now: list[float]) -> LoginThrottle:
    return LoginThrottle(MemoryKeyValue(clock=lambda: now[0]), SETTINGS)


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
    for _ in range(2):
        await throttle.failed("bob", "203.0.113.7")  # the address's window: 0 to 900
    now[0] = 500.0
    for _ in range(3):
        await throttle.failed("alice", "203.0.113.7")  # alice's from there: 500 to 1400
    now[0] = 510.0
    # Both the address (5 ≥ 5) and alice|address (3 ≥ 3) are over: the later end decides.
    refused = await refusal(throttle, "alice", "203.0.113.7")
    assert refused.headers == {"Retry-After": "890"}
    assert refused.message == "too many failed logins: try again in 14 min 50 s"
    # bob|address is under its limit, the address is not: the address's window decides.
    assert (await refusal(throttle, "bob", "203.0.113.7")).headers == {"Retry-After": "390"}


@pytest.mark.redis
async def test_a_counter_without_a_window_does_not_refuse_forever(
    redis_url: str, redis_prefix: str
) -> None:
    """A counter that lost its expiry (restored by hand, say) would refuse for good; it is
    not counted, and the next failure gives it its window back."""
    prefix = redis_prefix + uuid.uuid4().hex[:8] + ":"
    kv: KeyValue = RedisKeyValue(redis_url, prefix)
    throttle = LoginThrottle(kv, SETTINGS)
    admin = Redis.from_url(redis_url)
    try:
        await admin.set(prefix + "login:fail:acct_ip:alice|203.0.113.7", 50)
        await throttle.check("alice", "203.0.113.7")
        await throttle.failed("alice", "203.0.113.7")
        refused = await refusal(throttle, "alice", "203.0.113.7")
        assert WINDOW - 2 <= int(refused.headers["Retry-After"]) <= WINDOW
    finally:
        await admin.aclose()
        await kv.close()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 s"),
        (59, "59 s"),
        (60, "1 min"),
        (61, "1 min 1 s"),
        (3599, "59 min 59 s"),
        (3600, "1 h"),
        (3601, "1 h 1 min"),  # rounded up, never shorter than the wait
        (7500, "2 h 5 min"),
        (86400, "24 h"),
    ],
)
def test_durations_read_as_a_person_would_say_them(seconds: int, text: str) -> None:
    assert _duration(seconds) == text
