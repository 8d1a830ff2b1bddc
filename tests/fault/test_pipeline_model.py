"""A stateful model of outbox -> gateway -> broker -> archiver, with a crash at every step.

Hypothesis drives the real pieces in one process on the embedded stores: the client's
encrypted local store and its ``Outbox`` (``tui``), the chat node's ``Intake``, the SQLite
durable queue, and the ``Archiver`` writing to the SQLite document store. Between the steps
it crashes each of them: the client before it records an ack (its store is closed and
opened again from disk: the send is still in the outbox and goes out again, same msg_id),
the archiver after storing but before acking (its subscription goes away unsettled, a new
archiver with an empty seq cache gets the message again), and the broker (the queue adapter
is closed and opened again on the same file). At every step the store has at most one
document per msg_id, contiguous seqs per room, and nothing nobody wrote; at the end, once the
outbox is flushed and the queue drained, every message written is stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from backend.archiver.archiver import Archiver
from backend.chat.pipeline import Envelope, Intake, partition_queue
from backend.stores.documents.sqlite import SqliteDocumentStore
from backend.stores.ephemeral.memory import MemoryDoorbell
from backend.stores.queue.embedded import SqliteQueue
from backend.stores.queue.port import Delivery, Subscription
from tests.client.harness import FAST_KDF
from tui.client.store import Outbox, Outgoing
from tui.crypto.store import LocalStore

pytestmark = [pytest.mark.fault]

PASS = "model passphrase"
ROOMS = ["room-a", "room-b", "room-c"]
PARTITIONS = 1
"""One partition queue: every room's order goes through the same single consumer."""
NAMESPACE = "sealchat.model"
QUEUE = partition_queue(0, NAMESPACE)
STEP_TIMEOUT = 10.0
DRAIN_STEPS = 5_000


async def allow_all(room: str, user: str) -> bool:
    return True


class PipelineModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sealchat-model-"))
        self.loop = asyncio.new_event_loop()
        self.written: dict[str, str] = {}
        """msg_id -> room of every message the user wrote (put in the outbox)."""
        self.crashes: dict[str, int] = {"client": 0, "archiver": 0, "broker": 0}
        self.client = LocalStore.open(self.dir / "client.sqlite3", PASS, kdf=FAST_KDF)
        self.documents = SqliteDocumentStore(self.dir / "documents.sqlite3")
        self.doorbell = MemoryDoorbell()
        self.run(self.documents.setup())
        self.queue: SqliteQueue
        self.subscription: Subscription | None = None
        self._open_broker()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP_TIMEOUT))

    def _open_broker(self) -> None:
        self.queue = SqliteQueue(self.dir / "queue.sqlite3")
        self.intake = Intake(self.queue, allow_all, partitions=PARTITIONS, namespace=NAMESPACE)
        self.archiver = Archiver(
            self.queue, self.documents, self.doorbell, PARTITIONS, namespace=NAMESPACE
        )
        self.run(self.archiver.declare())

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.client)

    # --- the steps -------------------------------------------------------------------------
    @rule(room=st.sampled_from(ROOMS))
    def write(self, room: str) -> None:
        msg_id = uuid.uuid4().hex
        self.outbox.queue(Outgoing(msg_id, room, f"ct:{msg_id}"))
        self.written[msg_id] = room

    @rule(crash_before_ack=st.booleans())
    def gateway_send(self, crash_before_ack: bool) -> None:
        """The oldest outbox entry goes through the intake (published, confirmed)."""
        pending = self.outbox.pending()
        if not pending:
            return
        item = pending[0]
        self.run(self._accept(item))
        if crash_before_ack:  # the client dies before it records the ack
            self.crashes["client"] += 1
            self.client.close()
            self.client = LocalStore.open(self.dir / "client.sqlite3", PASS, kdf=FAST_KDF)
        else:
            self.outbox.acked(item.msg_id)

    async def _accept(self, item: Outgoing) -> None:
        envelope = self.intake.envelope(
            msg_id=item.msg_id,
            room=item.room,
            sender="alice",
            device="DEVICE1",
            ciphertext=item.ciphertext,
        )
        await self.intake.accept(envelope)

    @rule(crash_after_store=st.booleans())
    def archive_one(self, crash_after_store: bool) -> None:
        """The archiver takes the next delivery; it may crash after storing, before the ack."""
        delivery = self.run(self._next_delivery())
        if delivery is None:
            return
        if not crash_after_store:
            self.run(self.archiver.handle(delivery))
            return
        self.crashes["archiver"] += 1
        self.run(self.archiver.commit(Envelope.decode(delivery.body)))
        self.run(self._drop_consumer())
        # A new archiver process: no seq cache, the same queue and store.
        self.archiver = Archiver(
            self.queue, self.documents, self.doorbell, PARTITIONS, namespace=NAMESPACE
        )

    @rule()
    def broker_restart(self) -> None:
        """The embedded broker's process restarts: what it held unacked is handed out again."""
        self.crashes["broker"] += 1
        self.run(self._drop_consumer())
        self.run(self.queue.close())
        self._open_broker()

    async def _next_delivery(self) -> Delivery | None:
        if self.subscription is None:
            if await self.queue.depth(QUEUE) == 0:
                return None
            self.subscription = self.queue.consume(QUEUE, prefetch=1)
        try:
            return await asyncio.wait_for(anext(self.subscription), 1.0)
        except TimeoutError:
            return None

    async def _drop_consumer(self) -> None:
        if self.subscription is not None:
            await self.subscription.aclose()
            self.subscription = None

    # --- what must always hold ---------------------------------------------------------------
    def stored(self) -> dict[str, list[tuple[int, str, str]]]:
        async def read() -> dict[str, list[tuple[int, str, str]]]:
            rooms = {}
            for room in ROOMS:
                messages = await self.documents.messages_after(room, 0, 100_000)
                rooms[room] = [(m.seq, m.msg_id, m.ciphertext) for m in messages]
            return rooms

        result: dict[str, list[tuple[int, str, str]]] = self.run(read())
        return result

    @invariant()
    def store_is_exact_so_far(self) -> None:
        ids: list[str] = []
        for room, messages in self.stored().items():
            assert [seq for seq, _, _ in messages] == list(range(1, len(messages) + 1)), room
            for _, msg_id, ciphertext in messages:
                assert self.written.get(msg_id) == room and ciphertext == f"ct:{msg_id}"
                ids.append(msg_id)
        assert len(ids) == len(set(ids)), "a msg_id stored twice"

    def teardown(self) -> None:
        try:
            self._drain_and_check()
        finally:
            with contextlib.suppress(Exception):
                self.run(self._drop_consumer())
            with contextlib.suppress(Exception):
                self.run(self.queue.close())
            with contextlib.suppress(Exception):
                self.run(self.doorbell.close())
            with contextlib.suppress(Exception):
                self.run(self.documents.close())
            self.client.close()
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _drain_and_check(self) -> None:
        for _ in range(DRAIN_STEPS):
            if not self.outbox.pending():
                break
            self.gateway_send(crash_before_ack=False)
        for _ in range(DRAIN_STEPS):
            delivery = self.run(self._next_delivery())
            if delivery is None:
                break
            self.run(self.archiver.handle(delivery))
        self.store_is_exact_so_far()
        stored = {m for messages in self.stored().values() for _, m, _ in messages}
        assert stored == set(self.written), (
            f"written {len(self.written)}, stored {len(stored)}, crashes {self.crashes}"
        )


PipelineModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPipelineModel = PipelineModel.TestCase
