"""A small supervisor for the fault suite: child processes it starts, and only those.

Every child runs in a session of its own with its output in a log file. The supervisor waits
for a child to answer (HTTP ``/health`` or a TCP port), kills it with SIGKILL by pid (the
fault), restarts it with the same command line, and in ``close`` ends whatever it started
that is still running. Nothing here looks processes up by name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

START_TIMEOUT = 60.0
"""Seconds a child may take to answer after a (re)start; the machine may be busy."""
STOP_TIMEOUT = 15.0


class ChildFailed(AssertionError):
    """A child exited or never became ready; the message carries its log's tail."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Child:
    """One process of the suite: how to start it, how to tell it is ready, where it logs."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    health_url: str | None = None
    port: int | None = None
    """Ready when ``health_url`` answers 200, else when ``port`` accepts connections."""
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)
    """Seconds each start took until ready (the first start and every restart)."""

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} {self.argv[0]}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so its helpers go with it
            )

    async def start(self) -> float:
        """Spawn and wait until ready; the seconds that took."""
        began = time.monotonic()
        self.spawn()
        await self.wait_ready()
        took = time.monotonic() - began
        self.starts.append(took)
        return took

    async def wait_ready(self, within: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while True:
                if not self.running:
                    raise ChildFailed(f"{self.name} exited ({self.exit_code()})\n{self.tail()}")
                if await self._ready(http):
                    return
                if time.monotonic() > deadline:
                    raise ChildFailed(f"{self.name} not ready after {within} s\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        if self.health_url is not None:
            try:
                async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(2)) as r:
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False
        assert self.port is not None
        return port_open(self.port)

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal_target(self) -> int:
        """The pid that the fault hits: the child itself (subclasses pick a grandchild)."""
        return self.pid

    async def kill9(self) -> None:
        """SIGKILL the process (no cleanup of any kind), then reap what is left of it."""
        target = self.signal_target()
        os.kill(target, signal.SIGKILL)
        await self._reap()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_TIMEOUT``; reaps the child's process group."""
        if not self.running:
            await self._reap()
            return
        os.kill(self.pid, signal.SIGTERM)
        if not await self._exited(STOP_TIMEOUT):
            os.kill(self.pid, signal.SIGKILL)
        await self._reap()

    async def terminate(self) -> float:
        """The graceful stop an operator's rolling restart does: SIGTERM, then wait for the
        child to finish its shutdown; the seconds that took. Fails if it did not exit
        within ``STOP_TIMEOUT`` (it is then killed) or exited other than 0."""
        began = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        clean = await self._exited(STOP_TIMEOUT)
        took = time.monotonic() - began
        await self._reap()
        if not clean or self.exit_code() != 0:
            raise ChildFailed(
                f"{self.name}: no clean exit on SIGTERM ({self.exit_code()})\n{self.tail()}"
            )
        return took

    async def _exited(self, within: float) -> bool:
        assert self.proc is not None
        try:
            await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            return False
        return True

    async def _reap(self) -> None:
        assert self.proc is not None
        pgid = self.proc.pid  # start_new_session: the group id is the child's pid
        await self._exited(STOP_TIMEOUT)
        # Helpers of our child (Erlang's erl_child_setup, …) live in the group we made.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=STOP_TIMEOUT)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- {self.name} ({self.log_path}), last {lines} lines:\n" + "\n".join(
            text[-lines:]
        )


class ErlangChild(Child):
    """``rabbitmq-server`` is a shell script whose child ``beam.smp`` is the broker."""

    def signal_target(self) -> int:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        for pid in children:
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                return int(pid)
        raise ChildFailed(f"{self.name}: no beam process under pid {self.pid}\n{self.tail()}")


class Supervisor:
    """Owns every child a test started; ``close`` ends them all (in reverse start order)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def add(self, child: Child) -> Child:
        self.children.append(child)
        return child

    async def close(self) -> None:
        for child in reversed(self.children):
            if child.proc is not None:
                await child.stop()

    def tails(self) -> str:
        return "\n".join(c.tail() for c in self.children if c.proc is not None)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], within: float, step: float = 0.2
) -> bool:
    """Poll ``condition`` until true or ``within`` seconds pass; whether it became true."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
