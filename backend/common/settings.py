"""Configuration: a TOML file, then ``SEALCHAT_*`` environment variables, then command-line flags.

Later sources win. Nested settings are addressed with a double underscore in the environment:
``[database] url = …`` in the file is ``SEALCHAT_DATABASE__URL`` in the environment. Values
that start with ``[`` or ``{`` are read as JSON (lists such as ``SEALCHAT_AUTH__ADMINS``).

Everything is validated once, at start; a bad or missing setting becomes a ``SettingsError``
whose one-line message names the setting and the environment variable that sets it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

ENV_PREFIX = "SEALCHAT_"

#: Default listen port of each service in cluster mode, and of ``all``.
DEFAULT_PORTS = {"all": 8080, "auth": 8081, "chat": 8082, "log": 8083, "archiver": 8084}


#: Passwords that servers ship with or that people type first: refused off loopback.
WEAK_PASSWORDS = frozenset(
    {
        "guest",
        "root",
        "admin",
        "password",
        "passwd",
        "changeme",
        "secret",
        "sealchat",
        "test",
        "mysql",
        "mariadb",
        "redis",
        "rabbitmq",
        "mongo",
        "mongodb",
        "123456",
        "12345678",
    }
)
MIN_STORE_PASSWORD = 12


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts(netloc: str) -> list[str]:
    """The host names of ``host:port[,host:port…]`` (MongoDB lists several)."""
    out = []
    for part in netloc.split(","):
        if part.startswith("["):
            out.append(part[1:].partition("]")[0])
        else:
            out.append(part.rpartition(":")[0] if part.count(":") == 1 else part)
    return [h for h in out if h]


def insecure_credentials(url: str) -> str | None:
    """Why a store URL's credentials are unfit for a network, or None when they are fine.

    Refused: no password (RabbitMQ then logs in as guest/guest, MariaDB as a password-less
    user, Redis and MongoDB unauthenticated), a password from ``WEAK_PASSWORDS``, equal to the
    user name, or shorter than ``MIN_STORE_PASSWORD``. A URL whose every host is on loopback
    (or a Unix socket) is fine: nothing off the machine can reach it, which is how the test
    suite and a single-machine lab run. The message never contains the password.
    """
    netloc = urlsplit(url).netloc
    creds, at, hostpart = netloc.rpartition("@")
    hosts = _hosts(hostpart)
    if not hosts or all(_is_loopback(h) for h in hosts):
        return None
    user, colon, password = creds.partition(":")
    user, password = unquote(user), unquote(password)
    if not at or not colon or not password:
        return "no password (the server's default or an open door) on a non-loopback host"
    if password.lower() in WEAK_PASSWORDS or password == user:
        return "a default or guessable password on a non-loopback host"
    if len(password) < MIN_STORE_PASSWORD:
        return f"a password shorter than {MIN_STORE_PASSWORD} characters on a non-loopback host"
    return None


class SettingsError(Exception):
    """A setting is missing or invalid; ``str()`` is the one line shown to the operator."""


class Mode(StrEnum):
    EMBEDDED = "embedded"
    """Every store in SQLite / in-process under ``data_dir``; secrets generated there."""
    CLUSTER = "cluster"
    """MariaDB, MongoDB, Redis, RabbitMQ; every secret and URL must be configured."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    """None: the service's default port (``DEFAULT_PORTS``)."""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=64 * 1024 * 1024)
    allowed_origins: list[str] = []
    """Origins allowed to open a WebSocket (a browser's ``Origin`` header); empty: none."""
    shutdown_timeout: float = Field(default=10.0, ge=0, le=300)
    trusted_proxies: list[str] = []
    """Addresses or networks of load balancers whose X-Forwarded-For is believed."""
    metrics_allow: list[str] = []
    """Addresses or networks besides loopback that may read ``/<service>/metrics``."""
    allow_insecure_dev_credentials: bool = False
    """Cluster mode refuses store URLs with default, missing or weak credentials unless every
    host they name is on loopback. True lifts that refusal everywhere: a lab only, never a
    deployment (see ``insecure_credentials``)."""


class DatabaseSettings(_Section):
    url: SecretStr | None = None
    """``mysql+aiomysql://user:pass@host/db`` in cluster mode; embedded: SQLite in data_dir."""
    pool_size: int = Field(default=10, ge=1, le=200)


class MongoSettings(_Section):
    url: SecretStr | None = None
    database: str = Field(default="sealchat", pattern=r"^[A-Za-z0-9_-]{1,63}$")


class RedisSettings(_Section):
    url: SecretStr | None = None
    prefix: str = Field(default="sealchat:", max_length=64)


class RabbitSettings(_Section):
    url: SecretStr | None = None


class AuthSettings(_Section):
    issuer: str = "sealchat"
    access_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_ttl_days: int = Field(default=30, ge=1, le=365)
    signing_keys: list[Path] = []
    """Ed25519 private keys (PEM). The first signs; the rest are published in the JWKS only,
    so tokens they signed stay valid during a key rotation. Required in cluster mode."""
    jwks_url: str | None = None
    """Where a service running without auth in its process (cluster chat and log nodes)
    reads the token keys: the auth service's ``/auth/.well-known/jwks.json``."""
    argon2_time_cost: int = Field(default=2, ge=2, le=20)
    argon2_memory_kib: int = Field(default=19456, ge=19456, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1, le=16)
    hash_concurrency: int = Field(default=2, ge=1, le=64)
    """At most this many password hashes run at once (each takes ~20 MiB and a core)."""
    throttle_window_seconds: int = Field(default=900, ge=10, le=86400)
    throttle_per_account_ip: int = Field(default=10, ge=1)
    """Failed logins for one account from one address within the window before 429."""
    throttle_per_ip: int = Field(default=30, ge=1)
    """Failed logins from one address (any account) within the window before 429."""
    throttle_per_account: int = Field(default=100, ge=1)
    """Failed logins for one account from every address within the window before 429."""
    claims_per_device: int = Field(default=10, ge=1)
    """One-time keys one account may claim of one device per hour; past it, the fallback
    key is handed out instead, so nobody can drain another user's keys."""
    max_one_time_keys: int = Field(default=200, ge=1, le=10_000)
    """Unclaimed one-time keys a device may hold."""
    allow_signup: bool = True
    admins: list[str] = []
    """Account ids that get the ``admin`` role (the log query API)."""


class ChatSettings(_Section):
    """The WebSocket gateway: limits that keep one client from hurting the others."""

    auth_deadline_seconds: float = Field(default=10.0, gt=0, le=300)
    """A new connection must authenticate within this time, or it is closed (4001)."""
    max_frame_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Larger incoming frames close the connection (1009)."""
    send_queue_size: int = Field(default=512, ge=1, le=1_000_000)
    """Frames waiting for one slow client; past it, the client is cut off (4008)."""
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A socket that takes nothing this long while frames wait also means "too slow" (4008)."""
    rate_per_second: float = Field(default=20.0, gt=0, le=100_000)
    """Frames a client may send per second on average (token bucket)."""
    burst: int = Field(default=60, ge=1, le=1_000_000)
    """Frames a client may send at once; as many refused frames in a row close it (4009)."""
    partitions: int = Field(default=8, ge=1, le=256)
    """Message queue partitions (``sealchat.messages.N``). Each has one active archiver, which
    keeps every room's order; all nodes of a cluster must agree on this number."""
    heartbeat_seconds: float = Field(default=30.0, ge=1, le=3600)
    """A socket silent this long is pinged; one that then stays silent for half as long
    again is dropped (the check runs once a second, ``backend/chat/gateway/watch.py``)."""
    signin_concurrency: int = Field(default=32, ge=1, le=10_000)
    """Sockets signing in (token and device checks, presence snapshot, pending to-device) at
    once on a node; the rest wait their turn in order. Bounds the store round trips and the
    memory of a reconnect storm (every socket of a restarted node at once)."""
    max_blob_bytes: int = Field(default=25 * 1024 * 1024, ge=1024, le=1024**3)
    """Largest encrypted attachment accepted by ``POST /chat/blobs``."""
    member_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long a room's member list, once read, may answer the membership check of sends
    and the recipients of pushes when a change's doorbell ring was lost (changes otherwise
    reach every node at once, see ``backend/chat/member_cache.py``); 0 reads the database
    for every check and every push."""
    expiry_sweep_seconds: float = Field(default=30.0, ge=0.05, le=3600)
    """How often the archiver deletes the ciphertext of disappearing messages whose time
    has passed (clients hide them on time themselves; this bounds how long the server keeps
    them)."""


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = "auto"
    """auto: readable lines on a terminal, JSON lines otherwise (and always in cluster mode)."""


class Settings(_Section):
    mode: Mode = Mode.EMBEDDED
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("sealchatd")))
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    mongo: MongoSettings = MongoSettings()
    redis: RedisSettings = RedisSettings()
    rabbitmq: RabbitSettings = RabbitSettings()
    auth: AuthSettings = AuthSettings()
    chat: ChatSettings = ChatSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _cluster_needs_every_store(self) -> Settings:
        if self.mode is Mode.CLUSTER:
            # MongoDB is checked where it is opened: the auth service never needs it.
            for section in ("database", "redis", "rabbitmq"):
                if getattr(self, section).url is None:
                    raise ValueError(f"{section}.url: required in cluster mode")
            url = self.database.url.get_secret_value() if self.database.url else ""
            if not url.startswith("mysql+aiomysql://"):
                raise ValueError("database.url: cluster mode needs mysql+aiomysql://…")
            if not self.server.allow_insecure_dev_credentials:
                for section in ("database", "mongo", "redis", "rabbitmq"):
                    secret = getattr(self, section).url
                    problem = insecure_credentials(secret.get_secret_value()) if secret else None
                    if problem is not None:
                        raise ValueError(
                            f"{section}.url: {problem}; give the service its own user with a "
                            f"password of at least {MIN_STORE_PASSWORD} characters "
                            "(server.allow_insecure_dev_credentials = true lifts this in a lab)"
                        )
        return self

    def listen_port(self, service: str) -> int:
        return self.server.port or DEFAULT_PORTS[service]


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SEALCHAT_A__B=v`` → ``{"a": {"b": v}}`` for the top-level names Settings knows."""
    known = set(Settings.model_fields)
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in known:
            continue  # other SEALCHAT_* variables belong to the client or the tests
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"{name}: not valid JSON ({exc.msg})") from None
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{name}: conflicts with another SEALCHAT_ variable")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_name(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc)


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge and validate the configuration, or raise ``SettingsError``."""
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            data = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file}: not valid TOML ({exc})") from None
    data = _merge(data, _env_tree(os.environ if environ is None else environ))
    data = _merge(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:  # a model-level check names its setting in the message itself
            setting = msg.split(":", 1)[0]
            return_msg = f"setting {setting} ({_env_name(tuple(setting.split('.')))}): "
            raise SettingsError(return_msg + msg.split(": ", 1)[-1]) from None
        setting = ".".join(str(p) for p in loc)
        raise SettingsError(f"setting {setting} ({_env_name(loc)}): {msg}") from None
