"""Session-wide fixtures: one isolated slice of each real service, cleaned up afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from backend.common.settings import Settings, load_settings
from backend.stores.relational import migrate
from backend.stores.relational.engine import open_engine
from tests import services


@contextlib.contextmanager
def _mariadb_database(kind: str) -> Iterator[str]:
    """URL of a new MariaDB database named for this run and ``kind`` (dropped at the end)."""
    import pymysql

    services.require_reachable("mariadb", services.MARIADB_URL, 3306)
    from sqlalchemy.engine import make_url

    base = make_url(services.MARIADB_URL)
    name = f"sealchat_{kind}_{services.RUN_ID}"
    conn = pymysql.connect(
        host=base.host or "127.0.0.1",
        port=base.port or 3306,
        user=base.username or "root",
        password=base.password or "",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            for (old,) in cur.fetchall():
                if services.left_by_dead_run(old, f"sealchat_{kind}_"):
                    cur.execute(f"DROP DATABASE IF EXISTS `{old}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """The session's MariaDB database, migrated once (``migrated_mariadb``) and shared by every
    cluster-mode test; nothing may empty it while the session runs."""
    with _mariadb_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def scratch_mariadb_url() -> Iterator[str]:
    """A second database that the relational contract suite empties and migrates at will,
    apart from the shared one (emptying that broke every cluster test after it)."""
    with _mariadb_database("scratch") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    services.require_reachable("redis", services.REDIS_URL, 6379)
    return services.REDIS_URL


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix owned by this session; every key under it is deleted at the end."""
    import redis

    prefix = f"sealchat-test-{services.RUN_ID}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """URL of a RabbitMQ vhost made for this session (deleted at the end).

    With ``SEALCHAT_TEST_RABBITMQ_URL`` naming a vhost of its own, that one is used as is.
    """
    services.require_reachable("rabbitmq", services.RABBITMQ_URL, 5672)
    if shutil.which("rabbitmqctl") is None:
        yield services.RABBITMQ_URL
        return
    for old in services.rabbitmqctl_lines("list_vhosts", "--silent"):
        if services.left_by_dead_run(old, "sealchat-test-"):
            services.rabbitmqctl("delete_vhost", old)  # its quorum queues slow the broker down
    vhost = f"sealchat-test-{services.RUN_ID}"
    services.rabbitmqctl("add_vhost", vhost)
    services.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield services.RABBITMQ_URL.rstrip("/") + "/" + quote(vhost, safe="")
    finally:
        services.rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB-compatible server: ``SEALCHAT_TEST_MONGO_URL`` or a SecantusDB we start."""
    if services.MONGO_URL:
        services.require_reachable("mongo", services.MONGO_URL, 27017)
        yield services.MONGO_URL
        return
    exe = Path(sys.executable).with_name("secantusd-py")
    if not exe.exists():
        pytest.fail(
            f"secantusd-py not found next to {sys.executable}; " + services.START_HINTS["mongo"]
        )
    port = services.free_port()
    storage = tmp_path_factory.mktemp("secantus")
    log = (storage / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage / "db"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                services.require_reachable("mongo", f"mongodb://127.0.0.1:{port}", port)
                break
            except pytest.fail.Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def mongo_database() -> str:
    """A database name unique to one test (the adapter's contract tests drop it)."""
    import uuid

    return f"sealchat_test_{services.RUN_ID}_{uuid.uuid4().hex[:8]}"


# --- the whole stack, once on the embedded stores and once on the real servers -------------


@pytest.fixture(scope="session")
def migrated_mariadb(mariadb_url: str) -> str:
    async def run() -> None:
        engine = open_engine(mariadb_url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    return mariadb_url


MODES = [
    "embedded",
    pytest.param(
        "cluster",
        marks=[pytest.mark.mariadb, pytest.mark.redis, pytest.mark.rabbitmq, pytest.mark.mongo],
    ),
]


@pytest.fixture(params=MODES)
def make_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for one mode; keyword overrides go into the ``auth`` section."""
    base: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        # Tests pretend to come from several addresses through a trusted proxy on loopback.
        "server": {"trusted_proxies": ["127.0.0.1/32", "::1/128"]},
        "log": {"format": "json"},
    }
    if request.param == "cluster":
        key = tmp_path / "jwt.pem"
        from backend.common.tokens import SigningKey, write_secret_file

        write_secret_file(key, SigningKey.generate().pem())
        base |= {
            "mode": "cluster",
            "database": {"url": request.getfixturevalue("migrated_mariadb")},
            "redis": {
                "url": request.getfixturevalue("redis_url"),
                "prefix": request.getfixturevalue("redis_prefix") + uuid.uuid4().hex[:6] + ":",
            },
            "rabbitmq": {"url": request.getfixturevalue("rabbitmq_url")},
            "mongo": {
                "url": request.getfixturevalue("mongo_url"),
                "database": request.getfixturevalue("mongo_database"),
            },
            "auth": {"signing_keys": [str(key)]},
        }

    def make(**auth: Any) -> Settings:
        data = dict(base)
        data["auth"] = {**base.get("auth", {}), **auth}
        return load_settings(None, data, environ={})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()
