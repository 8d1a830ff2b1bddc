"""sealchat under test: embedded (``sealchatd all``) and cluster-on-one-machine.

The cluster is two ``sealchatd chat`` nodes, ``sealchatd auth`` and ``sealchatd archiver``
on the machine's MariaDB (a database of its own), Redis (a key prefix of its own),
RabbitMQ (a vhost of its own, made with ``rabbitmqctl``) and a SecantusDB started here (the
MongoDB-wire test server the test suite uses). Everything made is removed in ``stop``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from backend.common.tokens import SigningKey, write_secret_file
from bench.procs import Child, free_port, secantus
from bench.targets import CHAT_LIMITS, Sealchat

MARIADB_URL = os.environ.get("SEALCHAT_BENCH_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("SEALCHAT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("SEALCHAT_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
AUTH = {"access_ttl_seconds": 3600}  # sockets live no longer than their token
SERVER = {"shutdown_timeout": 2.0}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A sealchatd config file from plain values and one level of sections; returns ``path``
    (also the fault suite's writer)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Embedded(Sealchat):
    name = "sealchat-embedded"
    setup_concurrency = 4
    """SQLite has one writer: 16 concurrent writes queue past its 10 s busy timeout (503)."""

    async def start(self, progress: Callable[[str], None]) -> None:
        write_toml(
            self.config_path,
            {
                "data_dir": str(self.workdir / "embedded-data"),
                "server": SERVER,
                "chat": CHAT_LIMITS,
                "auth": AUTH,
                "log": {"format": "json", "level": "INFO"},
            },
        )
        self.port = free_port()
        await self.sealchatd("all", self.name, port=self.port).start()

    @property
    def rest(self) -> tuple[str, str]:
        base = f"http://127.0.0.1:{self.port}"
        return base, base

    def chat_ports(self) -> list[int]:
        return [self.port]


class Cluster(Sealchat):
    name = "sealchat-cluster"
    brokers = True

    def __init__(self, workdir: Path, chat_nodes: int = 2) -> None:
        super().__init__(workdir)
        self.chat_nodes = chat_nodes
        self.tag = f"sealbench_{uuid.uuid4().hex[:8]}"
        self.db_made = self.vhost_made = False
        self.chats: list[Child] = []

    # --- the stores' slices --------------------------------------------------------------
    def _mariadb(self, sql: str) -> None:
        import pymysql
        from sqlalchemy.engine import make_url

        base = make_url(MARIADB_URL)
        conn = pymysql.connect(
            host=base.host or "127.0.0.1",
            port=base.port or 3306,
            user=base.username or "root",
            password=base.password or "",
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def _rabbitmqctl(self, *args: str) -> None:
        argv = ["rabbitmqctl", *args]  # the broker's own CLI, as tests/conftest.py uses it
        subprocess.run(argv, check=True, capture_output=True, timeout=120)  # noqa: S603

    async def start(self, progress: Callable[[str], None]) -> None:
        from sqlalchemy.engine import make_url

        progress(f"{self.name}: database, vhost, key prefix, SecantusDB")
        await asyncio.to_thread(
            self._mariadb,
            f"CREATE DATABASE `{self.tag}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        )
        self.db_made = True
        if shutil.which("rabbitmqctl") is None:
            raise RuntimeError("rabbitmqctl not found: apt-get install -y rabbitmq-server")
        await asyncio.to_thread(self._rabbitmqctl, "add_vhost", self.tag)
        self.vhost_made = True
        await asyncio.to_thread(
            self._rabbitmqctl, "set_permissions", "-p", self.tag, "guest", ".*", ".*", ".*"
        )
        mongo = secantus(self.workdir)
        self.children.append(mongo)
        await mongo.start()
        key = self.workdir / "jwt.pem"
        write_secret_file(key, SigningKey.generate().pem())
        self.auth_port = free_port()
        db_url = make_url(MARIADB_URL).set(database=self.tag)
        config: dict[str, Any] = {
            "mode": "cluster",
            "data_dir": str(self.workdir / "cluster-data"),
            "server": SERVER,
            "database": {"url": db_url.render_as_string(hide_password=False)},
            "redis": {"url": REDIS_URL, "prefix": f"{self.tag}:"},
            "rabbitmq": {"url": RABBITMQ_URL.rstrip("/") + "/" + quote(self.tag, safe="")},
            "mongo": {"url": f"mongodb://127.0.0.1:{mongo.port}", "database": "sealchat"},
            "auth": {
                "signing_keys": [str(key)],
                "jwks_url": f"http://127.0.0.1:{self.auth_port}/auth/.well-known/jwks.json",
                **AUTH,
            },
            "chat": CHAT_LIMITS,
            "log": {"format": "json", "level": "INFO"},
        }
        write_toml(self.config_path, config)
        progress(f"{self.name}: migrate, then auth, {self.chat_nodes} chat nodes, archiver")
        migrate = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("sealchatd")),
            "migrate",
            "--config",
            str(self.config_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await migrate.communicate()
        if migrate.returncode != 0:
            raise RuntimeError(f"sealchatd migrate failed: {err.decode(errors='replace')}")
        await self.sealchatd("auth", "auth", port=self.auth_port).start()
        self.chats = [
            self.sealchatd("chat", f"chat{i + 1}", port=free_port()) for i in range(self.chat_nodes)
        ]
        archiver = self.sealchatd("archiver", "archiver", port=free_port())
        await asyncio.gather(*(c.start() for c in [*self.chats, archiver]))

    @property
    def rest(self) -> tuple[str, str]:
        return f"http://127.0.0.1:{self.auth_port}", f"http://127.0.0.1:{self.chats[0].port}"

    def chat_ports(self) -> list[int]:
        return [c.port for c in self.chats if c.port is not None]

    def idle_pid(self) -> int:
        return self.chats[0].pid

    async def stop(self) -> None:
        await super().stop()
        if self.db_made:
            await asyncio.to_thread(self._mariadb, f"DROP DATABASE IF EXISTS `{self.tag}`")
        if self.vhost_made:
            await asyncio.to_thread(self._rabbitmqctl, "delete_vhost", self.tag)
        await asyncio.to_thread(self._drop_redis_keys)

    def _drop_redis_keys(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{self.tag}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
