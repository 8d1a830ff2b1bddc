"""Processes the benchmark starts (and only those), CPU pinning, and what /proc says.

Every server runs in a session of its own with its output in a log file; it is ended by its
pid (SIGTERM, then SIGKILL) and nothing is ever looked up by name to be stopped. CPU time
comes from ``/proc/<pid>/stat`` (user and system clock ticks of all the process's threads),
machine-wide CPU and steal from ``/proc/stat``.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVER_CPUS = {0}
LOADGEN_CPUS = {1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    """Our environment without any ``SEALCHAT_`` setting that could leak into a server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALCHAT_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` (threads made later inherit it from their creator)."""
    usable = cpus & os.sched_getaffinity(0) if cpus else set()
    if not usable or os.cpu_count() == 1:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), usable)
        except (ProcessLookupError, PermissionError):
            pass


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(user, system) clock ticks the process has used so far, all its threads together."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return (0, 0)
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12])


def own_cpu_seconds() -> float:
    """This process's CPU time so far (user + system, all threads), to the microsecond."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError):
        return 0


def machine_ticks() -> dict[str, int]:
    """The ``cpu`` line of /proc/stat: busy, idle and steal ticks of the whole machine."""
    parts = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    return {
        "busy": user + nice + system + irq + softirq,
        "idle": idle + iowait,
        "steal": steal,
    }


def broker_pids() -> dict[str, int]:
    """The shared brokers' pids (read-only: their CPU is reported, they are never touched)."""
    wanted = {"redis-server": "redis", "beam.smp": "rabbitmq", "mariadbd": "mariadb"}
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in wanted and wanted[comm] not in found:
            found[wanted[comm]] = int(entry.name)
    return found


@dataclass
class Child:
    """One server process: how to start it, how to tell it is ready, where it logs."""

    name: str
    argv: list[str]
    log_path: Path
    store: bool = False
    """A store the target needs (SecantusDB standing in for mongod): not pinned with the
    servers, its CPU reported with the brokers'."""
    health_url: str | None = None
    port: int | None = None
    proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, patience: float = 90.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=child_env(),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + patience
        async with aiohttp.ClientSession() as http:
            while not await self._ready(http):
                if not self.running:
                    raise RuntimeError(f"{self.name} exited at start\n{self.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {patience} s\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        if self.health_url is None:
            assert self.port is not None
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        try:
            async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stop(self, patience: float = 15.0) -> None:
        """SIGTERM by pid, SIGKILL after ``patience`` seconds."""
        if self.proc is None or not self.running:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), patience)
        except TimeoutError:
            os.kill(self.pid, signal.SIGKILL)
            await self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- {self.name} ({self.log_path}):\n" + "\n".join(text[-lines:])


def secantus(workdir: Path, name: str = "secantus") -> Child:
    """SecantusDB (the MongoDB-wire test server of the ``test`` extra) on a free loopback
    port, its data under ``workdir``: a store child, not yet started."""
    port = free_port()
    storage = workdir / name
    storage.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("secantusd-py")
    argv = [
        str(exe),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage / "db"),
    ]
    return Child(name, argv, workdir / f"{name}.log", store=True, port=port)


SETTLED_CORES = 0.1
"""CPU (cores) of a target's processes (and stores) under which it counts as settled."""
SETTLE_WINDOW = 0.2
SETTLE_LIMIT = 10.0
"""Seconds a target may take to settle after its last delivery (then: ``unsettled``)."""


@dataclass
class _Sample:
    at: float
    procs: list[tuple[int, int]]
    gen: tuple[int, int]
    machine: dict[str, int]
    brokers: dict[str, tuple[int, int]]


@dataclass
class Usage:
    """CPU and memory of a set of processes and of the machine between two samples.

    A server may go on working after its last delivery (the embedded target writes its event
    log for about a second after a light-load run). ``settle`` waits for that tail: its CPU is
    charged to the run that caused it, and the next run starts on a quiet machine. Machine,
    generator and noise figures stay those of the measured window (start to ``settle``).
    """

    processes: dict[str, int]
    """The target's processes by name (``chat1``, ``archiver``…) and pid."""
    loadgen_pid: int = field(default_factory=os.getpid)
    stores: dict[str, int] = field(default_factory=dict)
    """The target's own store processes (SecantusDB): counted with the brokers, not the server."""
    _brokers: dict[str, int] = field(default_factory=dict)
    _begin: _Sample | None = None
    _end: _Sample | None = None
    _tail_s: float = 0.0
    _settled: bool = True

    def _sample(self) -> _Sample:
        return _Sample(
            time.monotonic(),
            [cpu_ticks(p) for p in self.processes.values()],
            cpu_ticks(self.loadgen_pid),
            machine_ticks(),
            {n: cpu_ticks(p) for n, p in self._brokers.items()},
        )

    def start(self, *, brokers: bool = False) -> None:
        self._brokers = {**(broker_pids() if brokers else {}), **self.stores}
        self._begin = self._sample()

    def _busy_ticks(self) -> int:
        """Clock ticks used so far by the target's processes and the brokers it is charged."""
        pids = [*self.processes.values(), *self._brokers.values()]
        return sum(sum(cpu_ticks(p)) for p in pids)

    async def settle(self) -> None:
        """End the measured window, then wait until the target (with its stores and brokers)
        is idle: at most ``SETTLED_CORES`` over ``SETTLE_WINDOW``, for up to
        ``SETTLE_LIMIT`` seconds."""
        self._end = self._sample()
        before = self._busy_ticks()
        while time.monotonic() - self._end.at < SETTLE_LIMIT:
            await asyncio.sleep(SETTLE_WINDOW)
            now = self._busy_ticks()
            if (now - before) / TICK <= SETTLED_CORES * SETTLE_WINDOW:
                break
            before = now
        else:
            self._settled = False
        self._tail_s = time.monotonic() - self._end.at

    def stop(self) -> dict[str, Any]:
        """Seconds of server user/sys CPU (also per process, brokers included; with the tail
        after ``settle``), load generator CPU, machine busy and steal (in cores), CPU left to
        everything else (other people's work: noise), and RSS."""
        b = self._begin
        assert b is not None, "stop() before start()"
        now = self._sample()
        e = self._end or now
        wall = max(e.at - b.at, 1e-6)
        user = sum(a[0] - z[0] for a, z in zip(now.procs, b.procs, strict=True)) / TICK
        system = sum(a[1] - z[1] for a, z in zip(now.procs, b.procs, strict=True)) / TICK
        in_window = sum(sum(a) - sum(z) for a, z in zip(e.procs, b.procs, strict=True)) / TICK
        gen = (sum(e.gen) - sum(b.gen)) / TICK
        d = {k: e.machine[k] - b.machine[k] for k in e.machine}
        total = max(d["busy"] + d["idle"] + d["steal"], 1)
        cores = os.cpu_count() or 1
        busy_cores = d["busy"] / total * cores
        by_process = {
            name: (sum(a) - sum(z)) / TICK
            for name, a, z in zip(self.processes, now.procs, b.procs, strict=True)
        }
        for name in self._brokers:
            by_process[name] = (sum(now.brokers[name]) - sum(b.brokers[name])) / TICK
        brokers = sum(by_process[name] for name in self._brokers)
        brokers_in_window = sum(sum(e.brokers[n]) - sum(b.brokers[n]) for n in self._brokers) / TICK
        other = busy_cores - (in_window + gen + brokers_in_window) / wall
        return {
            "wall_s": wall,
            "server_user_s": user,
            "server_sys_s": system,
            "loadgen_cpu_s": gen,
            "broker_cpu_s": brokers,
            "tail_s": self._tail_s,
            "tail_cpu_s": user + system + brokers - in_window - brokers_in_window,
            "settled": self._settled,
            "machine_busy_cores": busy_cores,
            "steal_pct": 100.0 * d["steal"] / total,
            "other_cores": max(other, 0.0),
            "rss_bytes": float(sum(rss_bytes(p) for p in self.processes.values())),
            "cpu_s_by_process": by_process,
        }
