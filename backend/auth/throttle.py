"""Login throttling per (account, address), per address and per account.

Counts failures only, in fixed windows, the same way for existing and unknown accounts.
The (account, address) limit stops guessing at one account from one place; the address
limit stops spraying one password over many accounts; the account limit (much higher)
bounds a distributed attack, while a real user elsewhere keeps getting in until then.
"""

from __future__ import annotations

import math

from backend.common.errors import ApiError
from backend.common.settings import AuthSettings
from backend.protocol.errors import ErrorCode
from backend.stores.ephemeral.port import KeyValue


class LoginThrottle:
    def __init__(self, kv: KeyValue, settings: AuthSettings) -> None:
        self._kv = kv
        self._window = settings.throttle_window_seconds
        self._limits = {
            "acct_ip": settings.throttle_per_account_ip,
            "ip": settings.throttle_per_ip,
            "acct": settings.throttle_per_account,
        }
        self.throttled = 0

    @staticmethod
    def _keys(account: str, address: str) -> dict[str, str]:
        return {
            "acct_ip": f"login:fail:acct_ip:{account}|{address}",
            "ip": f"login:fail:ip:{address}",
            "acct": f"login:fail:acct:{account}",
        }

    async def check(self, account: str, address: str) -> None:
        """Refuse (``429 throttled``) while any of the three windows is over its limit; the
        refusal says when the last of those windows ends (``Retry-After``, seconds)."""
        left = []
        for kind, key in self._keys(account, address).items():
            counter = await self._kv.counter(key)
            # A counter with no time left has no window (see Counter): the next failure
            # gives it one, rather than this one refusing forever.
            if counter.value >= self._limits[kind] and counter.seconds_left > 0:
                left.append(counter.seconds_left)
        if not left:
            return
        self.throttled += 1
        wait = max(left)
        raise ApiError(
            ErrorCode.THROTTLED,
            f"too many failed logins: try again in {_duration(wait)}",
            headers={"Retry-After": str(wait)},
        )

    async def failed(self, account: str, address: str) -> None:
        for key in self._keys(account, address).values():
            await self._kv.incr(key, self._window)

    async def succeeded(self, account: str, address: str) -> None:
        await self._kv.delete(self._keys(account, address)["acct_ip"])


def _duration(seconds: int) -> str:
    """``45 s``, ``14 min 10 s``, ``15 min``; from an hour on, whole minutes rounded up:
    ``1 h``, ``2 h 5 min``."""
    if seconds >= 3600:
        hours, minutes = divmod(math.ceil(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
