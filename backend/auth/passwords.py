"""Argon2id password hashing off the event loop, with bounded concurrency.

Each hash takes ~20 MiB and tens of milliseconds of a core; the semaphore keeps a login
storm from exhausting memory or starving the loop.
"""

from __future__ import annotations

import asyncio

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, concurrency: int
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Verified against when the account does not exist, so that path costs the same.
        self._decoy = self._hasher.hash("decoy password that matches nothing")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, phc: str | None, password: str) -> bool:
        """True if ``password`` matches; with ``phc=None`` do the same work and say False."""
        async with self._slots:
            return await asyncio.to_thread(self._verify, phc, password)

    def _verify(self, phc: str | None, password: str) -> bool:
        try:
            self._hasher.verify(phc or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return phc is not None

    def needs_rehash(self, phc: str) -> bool:
        return self._hasher.check_needs_rehash(phc)
