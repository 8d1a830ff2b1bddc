"""The one-command experience: when the chosen server is this machine and nothing answers,
offer to start ``sealchatd all`` (embedded stores) in the background.

The server is started in its own session so it outlives this client: a second ``sealchat``
in another terminal (another ``--home``) joins the same local server. Its pid is written to
``DATA/sealchatd.pid`` and its log to ``DATA/sealchatd.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
START_WITHIN = 60.0
#: Servers this process started: kept so they are not reaped (they outlive the client).
STARTED: list[subprocess.Popen[bytes]] = []


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port


def is_local(url: str) -> bool:
    return urlsplit(url).scheme == "http" and host_port(url)[0] in LOOPBACK


async def reachable(url: str, within: float = 1.0) -> bool:
    """Something accepts TCP connections at the server's address."""
    host, port = host_port(url)
    try:
        async with asyncio.timeout(within):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def server_command() -> list[str]:
    beside = Path(sys.executable).with_name("sealchatd")
    exe = str(beside) if beside.exists() else shutil.which("sealchatd")
    if exe is None:
        raise FileNotFoundError(
            "sealchatd is not installed here: install sealchat with `pip install -e .`, "
            "or point sealchat at a running server"
        )
    return [exe]


def _spawn(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    _host, port = host_port(url)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = (data_dir / "sealchatd.log").open("ab")
    try:
        proc = subprocess.Popen(  # noqa: S603 - our own server program, fixed arguments
            [*server_command(), "all", "--port", str(port), "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    STARTED.append(proc)
    (data_dir / "sealchatd.pid").write_text(f"{proc.pid}\n")
    return proc


async def start_local_server(url: str, data_dir: Path) -> int:
    """Start ``sealchatd all`` on ``url``'s port; its pid once it accepts connections."""
    proc = await asyncio.to_thread(_spawn, url, data_dir)
    deadline = time.monotonic() + START_WITHIN
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the local server stopped at once (exit {proc.returncode}): "
                f"see {data_dir / 'sealchatd.log'}"
            )
        if await reachable(url, 0.5):
            return proc.pid
        await asyncio.sleep(0.3)
    raise TimeoutError(
        f"the local server did not start in {START_WITHIN:.0f}s: see {data_dir / 'sealchatd.log'}"
    )
