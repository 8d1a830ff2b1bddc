"""Real ``sealchatd`` processes in cluster mode, and the brokers a test owns outright.

``Cluster`` writes one TOML file per test (the stores it uses) and starts ``sealchatd auth``,
any number of ``sealchatd chat`` nodes and ``sealchatd archiver`` on free loopback ports.
``own_rabbitmq`` and ``own_redis`` start a RabbitMQ node or a Redis server for one test,
so a test can stop *its* broker without touching the machine's shared one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sealchat_targets import write_toml
from tests.fault.procs import Child, ErlangChild, Supervisor
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SEALCHATD = BIN / "sealchatd"
BROKEN_LAUNCHER = "tests.fault.broken_sealchatd"


@dataclass
class Stores:
    """Where a cluster's processes keep their data; each test gets its own slice."""

    database_url: str
    redis_url: str
    redis_prefix: str
    rabbitmq_url: str
    mongo_url: str
    mongo_database: str


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without any ``SEALCHAT_`` setting that could leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALCHAT_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Cluster:
    """The sealchat services of one test, as separate processes."""

    sup: Supervisor
    stores: Stores
    signing_key: Path
    chat: dict[str, Any] = field(default_factory=dict)
    """Extra ``[chat]`` settings (limits) for every node."""
    auth: Child | None = None
    chats: list[Child] = field(default_factory=list)
    archiver: Child | None = None
    log: Child | None = None

    def config(self, name: str, extra: dict[str, Any] | None = None) -> Path:
        s = self.stores
        data: dict[str, Any] = {
            "mode": "cluster",
            "data_dir": str(self.sup.log_dir / "data"),
            "server": {"trusted_proxies": ["127.0.0.1/32"], "shutdown_timeout": 5.0},
            "database": {"url": s.database_url},
            "redis": {"url": s.redis_url, "prefix": s.redis_prefix},
            "rabbitmq": {"url": s.rabbitmq_url},
            "mongo": {"url": s.mongo_url, "database": s.mongo_database},
            "auth": {"signing_keys": [str(self.signing_key)]},
            "chat": dict(self.chat),
            "log": {"format": "json", "level": "INFO"},
        }
        if self.auth is not None and name != "auth":
            data["auth"]["jwks_url"] = self.url(self.auth, "/auth/.well-known/jwks.json")
        for section, values in (extra or {}).items():
            data[section] = {**data.get(section, {}), **values}
        return write_toml(self.sup.log_dir / f"{name}.toml", data)

    @staticmethod
    def url(child: Child, path: str = "") -> str:
        assert child.port is not None
        return f"http://127.0.0.1:{child.port}{path}"

    def _service(self, service: str, name: str, *, broken: bool = False) -> Child:
        port = free_port()
        config = self.config(name)
        if broken:  # the negative control's launcher: the same CLI with the intake patched
            argv = [sys.executable, "-m", BROKEN_LAUNCHER]
        else:
            argv = [str(SEALCHATD)]
        argv += [service, "--config", str(config), "--port", str(port)]
        return self.sup.add(
            Child(
                name=name,
                argv=argv,
                env=child_env(),
                cwd=REPO,
                log_path=self.sup.log_dir / f"{name}.log",
                health_url=f"http://127.0.0.1:{port}/{service}/health",
                port=port,
            )
        )

    async def start(self, chat_nodes: int = 1, *, broken_chat: bool = False) -> None:
        """auth first (the others read its JWKS at start), then the chat nodes and archiver."""
        import asyncio

        self.auth = self._service("auth", "auth")
        await self.auth.start()
        self.chats = [
            self._service("chat", f"chat{i + 1}", broken=broken_chat) for i in range(chat_nodes)
        ]
        self.archiver = self._service("archiver", "archiver")
        await asyncio.gather(*(c.start() for c in [*self.chats, self.archiver]))

    async def start_log(self) -> Child:
        """``sealchatd log``: the consumer of the event records every service emits."""
        self.log = self._service("log", "log")
        await self.log.start()
        return self.log

    def ws_urls(self) -> list[str]:
        return [self.url(c, "/chat/ws").replace("http://", "ws://") for c in self.chats]


def own_rabbitmq(sup: Supervisor) -> tuple[ErlangChild, str]:
    """A RabbitMQ node of this test alone (own name, ports, data and Erlang cookie home)."""
    home = sup.log_dir / "rabbitmq"
    home.mkdir(parents=True, exist_ok=True)
    port, dist = free_port(), free_port()
    node = f"sealfault-{port}@localhost"
    plugins = home / "enabled_plugins"
    plugins.write_text("[].\n")
    (home / "rabbitmq-env.conf").write_text("")  # not the machine's /etc/rabbitmq one
    conf = home / "rabbitmq.conf"
    conf.write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
    env = child_env(
        HOME=str(home),  # the node's .erlang.cookie goes here, not in the user's home
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist),
        RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
        RABBITMQ_CONFIG_FILE=str(conf),
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
        ERL_EPMD_ADDRESS="127.0.0.1",
    )
    child = ErlangChild(
        name="rabbitmq",
        # The packaged /usr/sbin wrapper would switch to the rabbitmq user; the real script
        # runs the node as whoever runs the tests.
        argv=[_rabbitmq_script()],
        env=env,
        cwd=home,
        log_path=sup.log_dir / "rabbitmq.log",
        port=port,
    )
    sup.add(child)
    return child, f"amqp://guest:guest@127.0.0.1:{port}/"


def _rabbitmq_script() -> str:
    for candidate in ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server"):
        if Path(candidate).exists():
            return candidate
    raise AssertionError("rabbitmq-server is not installed: apt-get install -y rabbitmq-server")


def own_redis(sup: Supervisor) -> tuple[Child, str]:
    """A Redis server of this test alone, without persistence (a restart empties it)."""
    port = free_port()
    child = Child(
        name="redis",
        argv=[
            *("redis-server", "--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--dir", str(sup.log_dir)),
        ],
        env=child_env(),
        log_path=sup.log_dir / "redis.log",
        port=port,
    )
    sup.add(child)
    return child, f"redis://127.0.0.1:{port}/0"
