"""Fixtures of the fault suite, and the results table printed at the end of the session."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from backend.common.tokens import SigningKey, write_secret_file
from tests.fault.broker import own_vhost
from tests.fault.checker import Report
from tests.fault.cluster import Cluster, Stores
from tests.fault.procs import Supervisor

RESULTS: list[Report] = []
COLUMNS = [
    "test",
    "sent",
    "accepted",
    "archived",
    "delivered",
    "lost",
    "duplicated",
    "holes",
    "unexpected",
    "seconds",
]

#: Gateway limits of the suite's chat nodes: a resend burst after a reconnect must not be
#: throttled into 4009 closes (the defaults are for one person typing).
CHAT_LIMITS: dict[str, Any] = {"rate_per_second": 500.0, "burst": 1000}


def record(report: Report) -> None:
    RESULTS.append(report)


def format_table(reports: list[Report]) -> str:
    rows = [COLUMNS] + [[str(r.row()[c]) for c in COLUMNS] for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.write_sep("=", "fault suite: delivery checker results")
    terminalreporter.write_line(format_table(RESULTS))
    terminalreporter.write_line(
        "delivered = (device, msg_id) pairs shown; a negative control must show lost > 0"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def fault_signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fault-keys") / "jwt.pem"
    write_secret_file(path, SigningKey.generate().pem())
    return path


@pytest.fixture
def fault_vhost(rabbitmq_url: str) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own on the shared broker. Its queues start empty, and
    the event records of a fault stream (thousands) never reach the session vhost, where the
    log service's tests would have to wade through them."""
    del rabbitmq_url  # asked for its check that the broker is there; the vhost is a sibling
    with own_vhost() as url:
        yield url


@pytest.fixture
async def supervisor(
    request: pytest.FixtureRequest,
    fault_vhost: str,  # set up first, so it is deleted only after every process has ended
) -> AsyncIterator[Supervisor]:
    """Every process a test starts; all ended afterwards. Logs and data live in a directory
    of their own (pytest's tmp_path is pruned by concurrent sessions), removed after a pass
    and kept, with the logs' tails printed, after a failure (or always, with
    ``SEALCHAT_FAULT_KEEP_LOGS=1``)."""
    sup = Supervisor(Path(tempfile.mkdtemp(prefix="sealchat-fault-")))
    try:
        yield sup
    finally:
        await sup.close()
        failed = any(
            getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
            for when in ("setup", "call")
        )
        if failed:
            print(f"\n{sup.tails()}\nlogs kept in {sup.log_dir}")
        elif os.environ.get("SEALCHAT_FAULT_KEEP_LOGS"):
            print(f"\nlogs kept in {sup.log_dir}")
        else:
            shutil.rmtree(sup.log_dir, ignore_errors=True)


@pytest.fixture
def fault_stores(
    migrated_mariadb: str,
    redis_url: str,
    redis_prefix: str,
    fault_vhost: str,
    mongo_url: str,
) -> Iterator[Stores]:
    """This test's slice of the shared servers: own Redis prefix, RabbitMQ vhost and MongoDB
    database."""
    database = f"sealchat_fault_{uuid.uuid4().hex[:10]}"
    yield Stores(
        database_url=migrated_mariadb,
        redis_url=redis_url,
        redis_prefix=redis_prefix + uuid.uuid4().hex[:6] + ":",
        rabbitmq_url=fault_vhost,
        mongo_url=mongo_url,
        mongo_database=database,
    )
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_url)
    try:
        client.drop_database(database)
    finally:
        client.close()


@pytest.fixture
def make_cluster(
    supervisor: Supervisor, fault_stores: Stores, fault_signing_key: Path
) -> Callable[..., Cluster]:
    """``make_cluster(**store_overrides)``: a cluster on this test's stores (not started)."""

    def make(**overrides: str) -> Cluster:
        stores = Stores(**{**fault_stores.__dict__, **overrides})
        return Cluster(supervisor, stores, fault_signing_key, chat=dict(CHAT_LIMITS))

    return make
