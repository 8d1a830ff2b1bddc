"""The chat node's fan-out survives a store outage: a ring whose members cannot be read is
retried, and once pushing works again every client here is told to resync (issue 9: with
MariaDB down the fan-out task used to die, and the node never pushed again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc as sa_exc

from backend.chat import fanout as fanout_module
from backend.chat.fanout import Fanout
from backend.chat.history import commit_channel, committed_ring
from backend.protocol.frames import Frame
from backend.stores.documents.port import StoredMessage
from backend.stores.ephemeral.memory import MemoryDoorbell

CHANNEL = commit_channel(0)


class RoomsWithOutage:
    """The member lookup (the member cache's part the fan-out uses), unreachable (as
    SQLAlchemy reports a lost MariaDB) while ``down`` is set; it keeps nothing."""

    def __init__(self) -> None:
        self.down = False
        self.reads = 0

    def follow(self, item: object) -> None:
        pass

    def stopped(self) -> None:
        pass

    async def members_of_rooms(self, rooms: set[str]) -> dict[str, list[str]]:
        self.reads += 1
        if self.down:
            raise sa_exc.OperationalError("SELECT", {}, ConnectionRefusedError(111, "refused"))
        return {room: ["alice", "bob"] for room in rooms}


class Pushes:
    """What the fan-out handed to the gateway: the texts of its pushes and frames to all."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.to_all: list[Frame] = []

    def push_frame(self, users: Any, frame: bytes) -> int:
        users = list(users)
        self.texts.append(frame.decode(errors="replace"))  # the header bytes are harmless here
        return len(users)

    def push_all(self, frame: Frame) -> int:
        self.to_all.append(frame)
        return 1


def ring(seq: int) -> bytes:
    return committed_ring(
        StoredMessage(
            room="r1",
            seq=seq,
            msg_id=f"{seq:032x}",
            sender="alice",
            device="DEVICE01",
            ts=datetime.now(UTC),
            ciphertext="ct",
        )
    )


async def until(condition: Any, within: float = 10.0, step: float = 0.01) -> None:
    for _ in range(int(within / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"not true within {within} s")


async def test_a_store_outage_does_not_end_the_fanout_and_ends_in_a_resync(monkeypatch):
    monkeypatch.setattr(fanout_module, "RECOVERY_FIRST_DELAY", 0.05)
    doorbell = MemoryDoorbell()
    rooms, pushes = RoomsWithOutage(), Pushes()
    fanout = Fanout(doorbell, [CHANNEL], rooms, pushes)  # type: ignore[arg-type]
    async with fanout.running():
        await until(lambda: bool(pushes.to_all))  # the subscription's own "subscribed"
        pushes.to_all.clear()
        await doorbell.ring(CHANNEL, ring(1))
        await until(lambda: len(pushes.texts) == 1)

        rooms.down = True
        await doorbell.ring(CHANNEL, ring(2))
        await doorbell.ring(CHANNEL, ring(3))
        await until(lambda: fanout.push_failures == 2)
        reads = rooms.reads
        await until(lambda: rooms.reads > reads + 1)  # retried in the background
        assert len(pushes.texts) == 1 and not pushes.to_all

        rooms.down = False
        await until(lambda: bool(pushes.to_all))
        assert [f.model_dump()["reason"] for f in pushes.to_all] == [
            fanout_module.PUSH_FAILED_REASON
        ]
        await doorbell.ring(CHANNEL, ring(4))  # and live pushes flow again
        await until(lambda: any(f"{4:032x}" in t for t in pushes.texts))
    await doorbell.close()


async def test_without_an_outage_nothing_is_retried_or_resynced():
    doorbell = MemoryDoorbell()
    rooms, pushes = RoomsWithOutage(), Pushes()
    fanout = Fanout(doorbell, [CHANNEL], rooms, pushes)  # type: ignore[arg-type]
    async with fanout.running():
        await until(lambda: bool(pushes.to_all))
        for seq in range(1, 4):
            await doorbell.ring(CHANNEL, ring(seq))
        await until(lambda: len(pushes.texts) == 3)
    assert fanout.push_failures == 0 and len(pushes.to_all) == 1
    await doorbell.close()
