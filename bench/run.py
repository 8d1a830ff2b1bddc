"""The benchmark run: start every target, interleave their runs, check, report.

``python -m bench`` (``make bench``) runs the full plan; ``python -m bench --smoke``
(``make bench-smoke``, CI) a tiny one whose only verdict is correctness. The exit status is
1 when any run lost, duplicated or mis-ordered a message (or a target failed to start).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import report, scenarios
from bench.loadgen import Receiver, close_clients, fanout_run, open_clients
from bench.procs import LOADGEN_CPUS, SERVER_CPUS, machine_ticks, pin
from bench.sealchat_targets import Cluster, Embedded
from bench.targets import Baseline, Sealchat, SocketIO, Target

GATEWAY_MAX_RINGS = 4000
"""A chat node's doorbell inbox holds 10,000 rings; a larger burst than it can push would be
traded for a ``resync`` (the designed overload behaviour: clients refill from history). The
gateway runs' rings are not in history, so they stay well below it and measure throughput;
4,000 is the rooms-of-10 burst of the fan-out's ``max`` step (900 until 2026-12-05: chosen
when the inbox held 1,000, it made bursts of ~60 ms that measured start-up more than
throughput)."""
SCENARIOS = ("idle", "fanout10", "gateway10", "fanout100", "reconnect", "brokers")
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS: dict[str, type[Target]] = {
    "baseline": Baseline,
    "socketio": SocketIO,
    "sealchat-embedded": Embedded,
    "sealchat-cluster": Cluster,
}


@dataclass
class Plan:
    clients: int = 500
    sizes: tuple[int, ...] = (10, 100)
    ladder: dict[int, list[float]] = field(
        default_factory=lambda: {10: [4500, 20000, 40000, 0], 100: [40000, 0]}
    )
    """Offered deliveries/s per room size; 0 is "max": ``burst`` messages all at once."""
    seconds: float = 2.0
    gateway_ladder: list[float] = field(default_factory=lambda: [20000, 0])
    """Offered deliveries/s of the gateway-alone runs (rings put on the doorbell)."""
    burst: dict[int, int] = field(default_factory=lambda: {10: 4000, 100: 600})
    reps: int = 3
    idle: int = 10000
    reconnect_rate: float = 10000.0
    reconnect_seconds: float = 3.0
    redis_messages: int = 20000
    rabbit_messages: dict[int, int] = field(default_factory=lambda: {1: 300, 100: 3000})
    stall: float = 15.0
    idle_seconds: float = 20.0
    cap_seconds: float = 4.0
    warmup: dict[int, int] = field(default_factory=lambda: {10: 100, 100: 20})
    budget: float = 540.0
    """Seconds the whole run may take, setup included (at least 120 s are left for the
    measurements); phases that would overrun it are skipped and listed."""
    scenarios: tuple[str, ...] = SCENARIOS
    """What runs (``--scenarios``); the rest is left out of the report, not skipped."""


SMOKE = Plan(
    clients=10,
    sizes=(10,),
    ladder={10: [2000, 0]},
    seconds=0.25,
    gateway_ladder=[0],
    burst={10: 30},
    reps=1,
    idle=20,
    reconnect_rate=1000.0,
    reconnect_seconds=0.3,
    redis_messages=200,
    rabbit_messages={1: 10, 10: 50},
    stall=15.0,
    idle_seconds=5.0,
    cap_seconds=2.0,
    warmup={10: 10},
    budget=600.0,
)
"""CI: every target, scenario and check once, on as little traffic as shows they work."""


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def raise_fd_limit(want: int = 65536) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, PermissionError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def step_name(rate: float) -> str:
    return "max" if rate == 0 else f"{rate / 1000:g}k/s"


class Bench:
    def __init__(self, plan: Plan, names: list[str], workdir: Path) -> None:
        self.plan = plan
        self.targets = [TARGETS[n](workdir) for n in names]
        self.runs: list[dict[str, Any]] = []
        self.extra: dict[str, list[dict[str, Any]]] = {}
        self.next_msg = 1
        self.began = time.monotonic()
        self.measuring = plan.budget
        self.best: dict[int, dict[str, float]] = {}
        """Room size → target → the best deliveries/s it showed (sizes the later runs)."""
        self.skipped: list[str] = []

    async def start(self) -> None:
        say("starting " + ", ".join(t.name for t in self.targets))
        await asyncio.gather(*(t.start(say) for t in self.targets))
        sealchats = [t for t in self.targets if isinstance(t, Sealchat)]
        await asyncio.gather(
            *(t.prepare(self.plan.clients, self.plan.sizes, say) for t in sealchats)
        )
        for t in self.targets:
            for pid in t.pids():
                pin(pid, SERVER_CPUS)
        pin(os.getpid(), LOADGEN_CPUS)
        say(
            f"servers pinned to CPU {sorted(SERVER_CPUS)}, load generator to {sorted(LOADGEN_CPUS)}"
        )
        setup = time.monotonic() - self.began
        self.measuring = max(self.plan.budget - setup, 120.0)
        say(f"setup took {setup:.0f} s; {self.measuring:.0f} s left for the measurements")
        self.began = time.monotonic()

    def profile(self, outdir: Path) -> list[subprocess.Popen[bytes]]:
        """py-spy on every sealchat process (collapsed stacks), until ``end_profile``."""
        outdir.mkdir(parents=True, exist_ok=True)
        spies = []
        for t in self.targets:
            if not isinstance(t, Sealchat):
                continue
            for child in t.children:
                argv = [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--format",
                    "raw",
                    # Only the thread holding the GIL: a waiting thread (aiosqlite's, the
                    # executor's) would otherwise show as busy. Time spent in C without the
                    # GIL (SQLite's own work, fsync) is not in these profiles.
                    "--gil",
                    "--rate",
                    "200",
                    "--pid",
                    str(child.pid),
                    "-o",
                    str(outdir / f"{t.name}-{child.name}.txt"),
                ]
                # py-spy from this venv on a process we started ourselves
                spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # noqa: S603
                spies.append(spy)
        return spies

    def left(self, share: float) -> bool:
        """Whether the phase that may run until ``share`` of the measuring time still may."""
        return self.until(share) > 0

    def until(self, share: float) -> float:
        """Seconds left until ``share`` of the measuring time (after setup) is used."""
        return self.began + self.measuring * share - time.monotonic()

    def skip(self, what: str) -> None:
        self.skipped.append(what)
        say(f"skipped (time budget): {what}")

    async def fanout(self) -> None:
        p = self.plan
        for size, share in zip(p.sizes, (0.6, 0.85), strict=False):
            best = self.best.setdefault(size, {})
            with_gateway = size == 10 and "gateway10" in p.scenarios
            if f"fanout{size}" not in p.scenarios and not with_gateway:
                continue
            if not self.left(share):
                self.skip(f"fanout{size}")
                continue
            receivers = {t.name: Receiver(t) for t in self.targets}
            clients = {}
            for t in self.targets:
                clients[t.name] = await open_clients(t, receivers[t.name], size, p.clients)
            say(f"rooms of {size}: {p.clients} clients connected to every target")
            await asyncio.sleep(1.0)
            for t in self.targets:
                best[t.name] = max(
                    best.get(t.name, 0.0),
                    await self.warm_up(t, receivers[t.name], clients[t.name], size),
                )
            saturated: set[str] = set()
            for rate in p.ladder[size] if f"fanout{size}" in p.scenarios else []:
                for rep in range(p.reps):
                    for t in self.targets:  # interleaved: A B C D, A B C D, …
                        if not self.left(share):
                            self.skip(f"fanout{size} {step_name(rate)} rep {rep} {t.name}")
                            continue
                        if rate and t.name in saturated:
                            continue  # it fell behind a lower rate: a higher one only queues
                        run = await self._fanout_run(
                            t, receivers[t.name], clients[t.name], size, rate, best.get(t.name, 0.0)
                        )
                        run |= {
                            "scenario": f"fanout{size}",
                            "step": step_name(rate),
                            "target": t.name,
                            "rep": rep,
                        }
                        self.runs.append(run)
                        best[t.name] = max(best.get(t.name, 0.0), run["delivered_per_s"])
                        if rate and run["delivered_per_s"] < 0.8 * rate:
                            saturated.add(t.name)
                        say(
                            f"fanout{size} {step_name(rate):>7} rep {rep} {t.name:<18} "
                            f"{run['delivered_per_s']:>9,.0f}/s p99 {run['p99_ms']:8.1f} ms "
                            f"{'ok' if run['ok'] else 'FAILED ' + str(run['problems'])}"
                            f"{' noisy' if run['noisy'] else ''}"
                        )
                        await asyncio.sleep(0.3)
            if with_gateway:
                await self.gateway(receivers, clients, share + 0.08)
            for cs in clients.values():
                close_clients(cs)
            await asyncio.sleep(1.0)

    async def gateway(
        self, receivers: dict[str, Receiver], clients: dict[str, list[Any]], share: float
    ) -> None:
        """The doorbell-to-sockets path of the cluster against the baseline's whole path,
        interleaved, at the gateway steps (``gateway10`` in the report)."""
        from bench.gateway import gateway_run

        pair = [t for t in self.targets if t.name in ("baseline", "sealchat-cluster")]
        if len(pair) != 2:
            return
        p = self.plan
        for rate in p.gateway_ladder:
            count = p.burst[10] if rate == 0 else max(int(rate / 10 * p.seconds), 1)
            count = min(count, GATEWAY_MAX_RINGS)
            for rep in range(p.reps):
                for t in pair:
                    if not self.left(share):
                        self.skip(f"gateway10 {step_name(rate)} rep {rep} {t.name}")
                        continue
                    kwargs: dict[str, Any] = {
                        "rate": 1e9 if rate == 0 else rate / 10,
                        "count": count,
                        "first": self._take(count),
                        "stall": p.stall,
                    }
                    if isinstance(t, Cluster):
                        run = await gateway_run(t, receivers[t.name], clients[t.name], **kwargs)
                    else:
                        run = await fanout_run(t, receivers[t.name], clients[t.name], **kwargs)
                    run |= {
                        "scenario": "gateway10",
                        "step": step_name(rate),
                        "target": t.name,
                        "rep": rep,
                        "capped": False,
                    }
                    self.runs.append(run)
                    say(
                        f"gateway10 {step_name(rate):>7} rep {rep} {t.name:<18} "
                        f"{run['delivered_per_s']:>9,.0f}/s p99 {run['p99_ms']:8.1f} ms "
                        f"{'ok' if run['ok'] else 'FAILED ' + str(run['problems'])}"
                    )
                    await asyncio.sleep(0.3)

    async def _fanout_run(
        self,
        t: Target,
        receiver: Receiver,
        clients: list[Any],
        size: int,
        rate: float,
        best: float,
    ) -> dict[str, Any]:
        """One run. A target far below the offered rate would take minutes to drain a full
        step, so a step's message count is capped at what it delivers in ``cap_seconds`` at
        the best rate it has shown (the run is marked ``capped``)."""
        p = self.plan
        fit = max(int(best * p.cap_seconds / size), 10) if best else None
        if rate:
            count, msg_rate = max(int(rate / size * p.seconds), 1), rate / size
        else:  # "max": everything at once
            count, msg_rate = p.burst[size], 1e9
        capped = fit is not None and fit < count
        count = min(count, fit) if fit is not None else count
        run = await fanout_run(
            t, receiver, clients, rate=msg_rate, count=count, first=self._take(count), stall=p.stall
        )
        return run | {"capped": capped}

    async def warm_up(self, t: Target, receiver: Receiver, clients: list[Any], size: int) -> float:
        """A short unrecorded run: warms the target up and tells roughly what it can do."""
        run = await fanout_run(
            t,
            receiver,
            clients,
            rate=2000.0 / size,
            count=self.plan.warmup[size],
            first=self._take(1000),
            stall=self.plan.stall,
        )
        say(
            f"warm-up fanout{size} {t.name}: {run['delivered_per_s']:,.0f}/s "
            f"{'ok' if run['ok'] else 'FAILED ' + str(run['problems'])}"
        )
        if not run["ok"]:
            self.runs.append(
                run
                | {
                    "scenario": f"fanout{size}",
                    "step": "warm-up",
                    "target": t.name,
                    "rep": 0,
                    "capped": False,
                }
            )
        return float(run["delivered_per_s"])

    def _take(self, count: int) -> int:
        first, self.next_msg = self.next_msg, self.next_msg + count
        return first

    async def reconnect(self) -> None:
        p = self.plan
        if "reconnect" not in p.scenarios:
            return
        items = []
        for rep in range(min(p.reps, 2)):
            for t in self.targets:
                if not isinstance(t, Sealchat):
                    continue
                if not self.left(0.93):
                    self.skip(f"reconnect rep {rep} {t.name}")
                    continue
                # Offered at no more than 70% of what it delivered in rooms of 10: the
                # scenario is about catching up, not about queueing.
                shown = self.best.get(10, {}).get(t.name, p.reconnect_rate)
                rate = min(p.reconnect_rate, 0.7 * shown) / 10
                count = max(int(rate * p.reconnect_seconds), 10)
                r = await scenarios.reconnect(
                    t, Receiver(t), p.clients, rate, count, self._take(count)
                )
                items.append({"target": t.name, "rep": rep, **r})
                say(f"reconnect rep {rep} {t.name}: {'ok' if r['ok'] else r['problems']}")
                await asyncio.sleep(1.0)
        self.extra["reconnect (10% of clients killed mid-stream, then caught up)"] = items

    async def idle(self) -> None:
        if "idle" not in self.plan.scenarios:
            return
        items = []
        for i, t in enumerate(self.targets):
            share = self.until(0.2) / (len(self.targets) - i)
            seconds = min(self.plan.idle_seconds, share)
            if seconds < 2:
                self.skip(f"idle {t.name}")
                continue
            r = await scenarios.idle(t, Receiver(t), self.plan.idle, seconds)
            items.append({"target": t.name, **r})
            say(
                f"idle {t.name}: {r['open']} open, {r['bytes_per_connection'] / 1024:.1f} KiB "
                f"each, {r['connect_per_s']:.0f} connects/s"
            )
        self.extra["idle connections (one server process)"] = items

    async def brokers(self) -> None:
        cluster = next((t for t in self.targets if isinstance(t, Cluster)), None)
        if cluster is None or "brokers" not in self.plan.scenarios:
            return
        from bench.sealchat_targets import RABBITMQ_URL, REDIS_URL

        items: list[dict[str, Any]] = []
        p = self.plan
        for publishers, share in ((1, 0.1), (16, 0.3), (0, 1.0)):
            n = max(int(p.redis_messages * share), 10)
            r = await scenarios.redis_leg(REDIS_URL, f"{cluster.tag}:leg:", n, publishers)
            items.append({"leg": "redis pub/sub", **r})
        vhost = RABBITMQ_URL.rstrip("/") + "/" + cluster.tag
        for in_flight, n in p.rabbit_messages.items():
            r = await scenarios.rabbitmq_leg(vhost, n, in_flight)
            items.append({"leg": "rabbitmq publish+confirm", **r})
        for item in items:
            say(f"broker leg: {item}")
        self.extra["broker legs alone"] = items

    async def stop(self) -> None:
        results = await asyncio.gather(*(t.stop() for t in self.targets), return_exceptions=True)
        for t, r in zip(self.targets, results, strict=True):
            if isinstance(r, BaseException):
                say(f"stopping {t.name}: {type(r).__name__}: {r}")

    def ok(self) -> bool:
        return all(r["ok"] for r in self.runs) and all(
            i.get("ok", True) for items in self.extra.values() for i in items
        )


async def main_async(args: argparse.Namespace) -> int:
    plan = SMOKE if args.smoke else Plan()
    if args.reps:
        plan.reps = args.reps
    if args.idle is not None:
        plan.idle = args.idle
    if args.clients:
        plan.clients = args.clients
    if args.idle_seconds:
        plan.idle_seconds = args.idle_seconds
    if args.budget:
        plan.budget = args.budget
    if args.scenarios:
        plan.scenarios = tuple(args.scenarios)
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="sealchat-bench-"))
    bench = Bench(plan, args.targets, workdir)
    began = time.monotonic()
    m0 = machine_ticks()
    failed = True
    try:
        await bench.start()
        await bench.idle()  # first: freed memory of earlier sockets would hide the growth
        if "idle" in plan.scenarios:
            await asyncio.sleep(10.0)  # let the servers finish closing the idle sockets
        spies = bench.profile(Path(args.profile)) if args.profile else []
        await bench.fanout()
        for spy in spies:  # py-spy writes its file on SIGINT
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
        await bench.reconnect()
        await bench.brokers()
        failed = False
    finally:
        await bench.stop()
        if failed:
            print("\n".join(c.tail() for t in bench.targets for c in t.children), file=sys.stderr)
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    m1 = machine_ticks()
    total = sum(m1.values()) - sum(m0.values())
    summary = report.summarise(bench.runs)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_end": os.getloadavg(),
        "busy_pct": 100 * (m1["busy"] - m0["busy"]) / max(total, 1),
        "steal_pct": 100 * (m1["steal"] - m0["steal"]) / max(total, 1),
        "seconds": time.monotonic() - began,
    }
    print()
    print(report.table(summary, bench.extra))
    if bench.skipped:
        print(f"\nskipped to stay within {plan.budget:.0f} s: {', '.join(bench.skipped)}")
    print(f"\nmachine: {machine}")
    ok = bench.ok()
    if not args.smoke or args.write:
        out = Path(args.output)
        report.write(
            out,
            {
                "plan": asdict(plan),
                "machine": machine,
                "ok": ok,
                "summary": summary,
                "runs": bench.runs,
                "skipped": bench.skipped,
                **bench.extra,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        say(f"wrote {out}")
    say("every run delivered every message exactly once" if ok else "CORRECTNESS FAILURES above")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny correctness-only run (CI)")
    p.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--reps", type=int, help="repetitions of each fan-out step")
    p.add_argument("--idle", type=int, help="idle connections per target")
    p.add_argument("--idle-seconds", type=float, help="time to open the idle connections (20)")
    p.add_argument("--clients", type=int, help="clients in the fan-out scenarios (500)")
    p.add_argument("--budget", type=float, help="seconds the whole run may take (540)")
    p.add_argument(
        "--scenarios", nargs="+", choices=SCENARIOS, help="run only these (default: all)"
    )
    p.add_argument("--output", default=str(RESULTS / "latest.json"))
    p.add_argument("--profile", help="py-spy the sealchat processes during the fan-out into DIR")
    p.add_argument("--write", action="store_true", help="write the JSON in smoke mode too")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
