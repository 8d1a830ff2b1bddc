"""Where the real services the tests talk to are, and how a test gets its own slice of each.

URLs come from the environment (loopback defaults). Every test session creates its own
MariaDB database, RabbitMQ vhost, Redis key prefix and MongoDB database, and removes them at
the end. A service that is not reachable is a test failure, never a silent skip: the message
says how to start it, or how to deselect its tests with ``-m``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from urllib.parse import urlsplit

import pytest

MARIADB_URL = os.environ.get("SEALCHAT_TEST_MARIADB_URL", "mysql+aiomysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("SEALCHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("SEALCHAT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
# Unset: the suite starts its own SecantusDB (a MongoDB-wire-compatible test server).
MONGO_URL = os.environ.get("SEALCHAT_TEST_MONGO_URL", "")

START_HINTS = {
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    "rabbitmq": "rabbitmq-server -detached",
    "mongo": "pip install SecantusDB==0.7.0b3 (the test extra), or set SEALCHAT_TEST_MONGO_URL",
}

RUN_ID = f"{os.getpid():x}x{uuid.uuid4().hex[:6]}"
"""Names this run's vhost, databases and key prefix. The pid comes first, so that a later
run can tell what a killed run left behind (``left_by_dead_run``)."""


def left_by_dead_run(name: str, prefix: str) -> bool:
    """Whether ``name`` (``prefix`` + a ``RUN_ID`` …) belongs to a run whose process is gone.

    Only names of this format count, and only a pid that no process has any more: a run still
    going (another suite on this machine) keeps its slice."""
    if not name.startswith(prefix):
        return False
    pid_hex, sep, _ = name[len(prefix) :].partition("x")
    if not sep:
        return False
    try:
        os.kill(int(pid_hex, 16), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OverflowError, PermissionError):
        return False
    return False


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def require_reachable(name: str, url: str, default_port: int) -> None:
    """Fail the test (with the command that fixes it) unless ``url`` accepts connections."""
    host, port = host_port(url, default_port)
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(
            f"{name} is not reachable at {host}:{port} ({exc}). Start it with: "
            f"{START_HINTS[name]}  -- or deselect its tests with: -m 'not {name}'",
            pytrace=False,
        )


def free_port(low: int = 20000, high: int = 32000) -> int:
    """A loopback port below 32768 that is free right now."""
    for _ in range(200):
        port = low + uuid.uuid4().int % (high - low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in range")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def rabbitmqctl_lines(*args: str) -> list[str]:
    done = subprocess.run(
        ["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child the test stops with Ctrl+C's signal: SIGINT at its default, as
    in an interactive terminal. A suite run as a background job (``cmd &`` without job control)
    hands its children SIGINT *ignored*, and a Python program then never sees it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
