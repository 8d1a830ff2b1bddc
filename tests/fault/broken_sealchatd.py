"""``sealchatd`` with a deliberately broken intake, for the fault suite's negative control.

The broken intake acks the client before the broker confirmed the message: it answers
``accepted`` at once and publishes what it acked in batches, every few seconds (the classic
"group commit" mistake of acking the batch when it is queued, not when it is confirmed).
A ``kill -9`` of this node then loses whatever it had acked but not yet published, and the
checker must say so. Test-only: it lives under ``tests/`` and patches the real CLI in its
own process; ``backend/`` is never changed.

Run as ``python -m tests.fault.broken_sealchatd chat --config … --port …``.
"""

from __future__ import annotations

import asyncio
import sys

from backend import cli
from backend.chat.pipeline import Envelope, Intake, partition_of, partition_queue
from backend.common.errors import ApiError
from backend.protocol.errors import ErrorCode

FLUSH_SECONDS = 3.0
"""Long enough that a kill at any moment of a stream finds acked, unpublished messages."""

_batch: list[tuple[Intake, Envelope]] = []
_flusher: list[asyncio.Task[None]] = []


async def _flush_forever() -> None:
    while True:
        await asyncio.sleep(FLUSH_SECONDS)
        batch = _batch[:]
        del _batch[:]
        for intake, envelope in batch:
            queue = partition_queue(
                partition_of(envelope.room, intake.partitions), intake.namespace
            )
            await intake._queue.publish(queue, envelope.encode(), message_id=envelope.msg_id)


async def accept_before_confirm(self: Intake, envelope: Envelope) -> Envelope:
    """The bug: the ack does not wait for the publish, let alone its confirm."""
    if not await self._is_member(envelope.room, envelope.sender):
        raise ApiError(ErrorCode.FORBIDDEN, "you are not a member of this room")
    if not _flusher:
        _flusher.append(asyncio.create_task(_flush_forever()))
    _batch.append((self, envelope))
    self.accepted += 1
    return envelope


def main() -> int:
    Intake.accept = accept_before_confirm  # type: ignore[method-assign]
    print("broken sealchatd: the intake acks before the broker confirms", flush=True)
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
