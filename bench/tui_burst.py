"""Does the Textual client stay responsive while a burst of messages arrives?

    python -m bench.tui_burst [--count 1000] [--limits raised|shipped] [--json PATH]

A real ``sealchatd all`` on a free loopback port, two real accounts with real device keys.
Alice runs the real ``SealchatApp`` headless (``App.run_test``) with her 1:1 room with Bob
open; Bob is a headless ``ChatClient`` in a *separate process* (so his encryption costs no CPU
in the app's event loop) that sends ``--count`` messages as fast as the server lets him (up to
``--window`` unacknowledged at once). In the app, a Textual timer asks to tick every 10 ms: the
gaps between its ticks are the stalls a key press would have seen (the timer's event goes
through the app's message queue like any other); and the CPU time the event loop's thread used
in each gap, which is the app's own share of a stall (the rest is waiting for a core or the
disk, which a loaded machine inflates). Also measured: the time from Bob's first send
until the last message is in Alice's log, decrypted, and the time spent in the main screen's
``apply`` (one call per batch of client events).

``--limits raised`` (the default) lifts the gateway's per-connection rate limit (20 frames/s,
burst 60) so that Bob can send a real burst; ``shipped`` keeps the defaults (Bob is then
throttled to about 20 messages/s and the figures show the steady state). Everything else is
the default configuration, including the 512-frame send queue per connection: a client that
does not read fast enough is cut off, which this would show as ``reconnects``.

Headless Textual still lays out and renders every widget into strips; it skips only the final
conversion to escape codes and the write to a terminal. Figures only, no thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.procs import BIN, REPO, Child, child_env, free_port
from bench.sealchat_targets import write_toml

PASSWORD = "correct horse battery staple"  # noqa: S105 - throwaway accounts on a throwaway server
PASSPHRASE = "bench local passphrase"  # noqa: S105 - throwaway profiles
TICK = 0.010
SIZE = (120, 40)
RAISED = {"rate_per_second": 100_000, "burst": 1_000_000}
#: Every wait is bounded: the machine is small and shared.
WITHIN = 300.0


def kdf() -> Any:
    """A cheap Argon2id for the benchmark's throwaway profiles (the tests' setting)."""
    from tui.crypto import KdfParams

    return KdfParams(time_cost=2, memory_kib=19456, parallelism=1)


@dataclass
class Figures:
    count: int
    limits: str
    window: int
    on_screen_s: float
    """From Bob's first send until the last message is in Alice's log, decrypted."""
    sender_s: float
    """Bob's own time from the first send to the last ack."""
    tick_max_ms: float
    tick_p99_ms: float
    tick_p50_ms: float
    ticks: int
    gaps_over_100ms: int
    busy_max_ms: float
    """The most CPU the app's event loop used between two ticks: the part of a gap that is
    the app's own work, not waiting for a core on a loaded machine (or for the disk)."""
    busy_over_100ms: int
    app_cpu_s: float
    """CPU time of this process (the app and its client core) from the first send until all
    are on screen: unlike the gaps, barely moved by other load on the machine."""
    apply_calls: int
    apply_max_ms: float
    apply_total_ms: float
    shown: int
    undecryptable: int
    reconnects: int


# --- setup through the client core ---------------------------------------------------------
async def make_profile(home: Path, server: str, user: str) -> Any:
    """Sign up ``user`` and log this profile's new device in; the open client and store."""
    from tui.client.profile import Profile, ProfileConfig, login_device, make_client, new_device_id
    from tui.crypto import LocalStore

    await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
    store = LocalStore.open(Profile(home).store_path, PASSPHRASE, kdf=kdf())
    client = make_client(server, store, None)
    await client.api.signup(user, PASSWORD, f"{user}@example.org")
    e2ee = await login_device(client, store, user, PASSWORD, new_device_id())
    Profile(home).save_config(ProfileConfig(server, user, e2ee.engine.device_id))
    return client, store


async def two_friends(work: Path, server: str) -> tuple[str, str, str]:
    """Alice and Bob, friends, with their 1:1 room; (alice, bob, room)."""
    alice_c, alice_s = await make_profile(work / "alice", server, "alice")
    bob_c, bob_s = await make_profile(work / "bob", server, "bob")
    try:
        await bob_c.api.request_friend("alice")
        await alice_c.api.accept_friend("bob")
        room = str((await bob_c.rooms.direct("alice"))["id"])
    finally:
        for client, store in ((alice_c, alice_s), (bob_c, bob_s)):
            await client.close()
            store.close()
    return "alice", "bob", room


# --- the sender: a separate process --------------------------------------------------------
async def sender(server: str, home: Path, room: str, count: int, window: int) -> None:
    """Bob: connect, send one warm-up (keys shared), say ``ready``, wait for ``go``, burst."""
    from tui.client.profile import Profile, make_client

    profile = Profile(home)
    config = profile.config()
    assert config is not None
    store = await profile.open_store(PASSPHRASE, kdf())
    client = make_client(server, store, config.device_id)
    try:
        client.connect()
        await client.wait_synced()
        await client.send(room, {"body": "warm-up"})
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        gate = asyncio.Semaphore(window)

        async def one(n: int) -> None:
            async with gate:
                await client.send(room, {"body": f"burst message {n} of {count}"})

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(1, count + 1)))
        print(json.dumps({"sender_s": time.perf_counter() - started}), flush=True)
    finally:
        await client.close()
        store.close()


# --- the app under test --------------------------------------------------------------------
async def measure(
    work: Path, server: str, room: str, count: int, window: int, limits: str
) -> Figures:
    from textual.widgets import Input

    from tui.app import SealchatApp
    from tui.client.events import ConnectionState
    from tui.screens.main import MainScreen
    from tui.screens.welcome import UnlockScreen

    app = SealchatApp(
        work / "alice", kdf=kdf(), downloads=work / "dl", server_data_dir=work / "unused"
    )
    ticks: list[tuple[float, float]] = []
    """(wall clock, CPU time of the event loop's thread) at each tick."""
    applies: list[float] = []

    async with app.run_test(size=SIZE) as pilot:

        async def until(what: str, check: Any) -> Any:
            deadline = time.monotonic() + WITHIN
            while not (value := check()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"still waiting for {what} after {WITHIN:.0f}s")
                # Not pilot.pause: it gives up when the app is busy for long, and a busy
                # app is what this measures.
                await asyncio.sleep(0.02)
            return value

        await until("the unlock form", lambda: isinstance(app.screen, UnlockScreen))
        await pilot.pause(0.2)
        app.screen.query_one("#passphrase", Input).value = PASSPHRASE
        await pilot.press("enter")
        main = await until(
            "the main screen, online",
            lambda: (
                app.main
                if isinstance(app.screen, MainScreen)
                and app.session is not None
                and app.session.client.state == "online"
                else None
            ),
        )
        assert app.session is not None
        await until("the room in the list", lambda: room in main.roster.rooms)
        main.choose_room(room)
        log = main.chat.log_widget
        await until("the room open", lambda: main.chat.room is not None)

        timed_apply = main.apply

        def apply(events: list[Any]) -> None:
            began = time.perf_counter()
            timed_apply(events)
            applies.append(time.perf_counter() - began)

        main.apply = apply  # type: ignore[method-assign]  # timing wrapper, same call

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.tui_burst",
            "--sender",
            server,
            str(work / "bob"),
            room,
            "--count",
            str(count),
            "--window",
            str(window),
            cwd=REPO,
            env=child_env(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            async with asyncio.timeout(WITHIN):
                line = await proc.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"the sender did not start: {line!r}")
            first = await until("the warm-up on screen", lambda: log.newest_seq or None)
            await asyncio.sleep(0.5)
            drops: list[str] = []

            def watch(ev: Any) -> None:
                if isinstance(ev, ConnectionState) and ev.state == "offline":
                    drops.append(ev.detail)

            unwatch = app.session.client.events.on(watch)
            applies.clear()
            timer = app.set_interval(
                TICK, lambda: ticks.append((time.perf_counter(), time.thread_time()))
            )
            started, cpu = time.perf_counter(), time.process_time()
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            last = first + count

            def all_shown() -> bool:
                entry = log.entry(seq=last)
                return entry is not None and entry.kind == "message"

            await until(f"message {last} on screen", all_shown)
            await asyncio.sleep(0)  # and drawn
            on_screen = time.perf_counter() - started
            cpu = time.process_time() - cpu
            async with asyncio.timeout(WITHIN):
                result = json.loads(await proc.stdout.readline())
            await asyncio.sleep(1.0)  # a quiet second after the burst
            timer.stop()
            unwatch()
            shown = log.entries()
        finally:
            if proc.returncode is None:
                proc.stdin.close()
                try:
                    async with asyncio.timeout(30):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()

    gaps = sorted((b[0] - a[0]) * 1000 for a, b in itertools.pairwise(ticks))
    busy = sorted((b[1] - a[1]) * 1000 for a, b in itertools.pairwise(ticks))
    return Figures(
        count=count,
        limits=limits,
        window=window,
        on_screen_s=round(on_screen, 2),
        sender_s=round(float(result["sender_s"]), 2),
        tick_max_ms=round(gaps[-1], 1) if gaps else 0.0,
        tick_p99_ms=round(gaps[int(len(gaps) * 0.99)], 1) if gaps else 0.0,
        tick_p50_ms=round(statistics.median(gaps), 1) if gaps else 0.0,
        ticks=len(ticks),
        gaps_over_100ms=sum(1 for g in gaps if g > 100),
        busy_max_ms=round(busy[-1], 1) if busy else 0.0,
        busy_over_100ms=sum(1 for b in busy if b > 100),
        app_cpu_s=round(cpu, 2),
        apply_calls=len(applies),
        apply_max_ms=round(max(applies, default=0.0) * 1000, 1),
        apply_total_ms=round(sum(applies) * 1000, 1),
        shown=sum(1 for e in shown if e.kind == "message"),
        undecryptable=sum(1 for e in shown if e.kind == "undecryptable"),
        reconnects=len(drops),
    )


async def run(count: int, limits: str, window: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="sealchat-tui-burst-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = work / "sealchat.toml"
        write_toml(config, {"chat": RAISED} if limits == "raised" else {})
        server = Child(
            "sealchatd",
            [
                str(BIN / "sealchatd"),
                "all",
                "--port",
                str(port),
                "--data-dir",
                str(work / "data"),
                "--config",
                str(config),
            ],
            work / "sealchatd.log",
            health_url=f"http://127.0.0.1:{port}/auth/health",
        )
        await server.start()
        try:
            url = f"http://127.0.0.1:{port}"
            _alice, _bob, room = await two_friends(work, url)
            return await measure(work, url, room, count, window, limits)
        finally:
            await server.stop()


def report(fig: Figures) -> str:
    return "\n".join(
        [
            f"TUI burst: {fig.count} messages (limits {fig.limits}, window {fig.window})",
            f"  all on screen after   {fig.on_screen_s:8.2f} s   (sender done in "
            f"{fig.sender_s:.2f} s)",
            f"  10 ms tick gaps       max {fig.tick_max_ms:.1f} ms, p99 {fig.tick_p99_ms:.1f} ms, "
            f"p50 {fig.tick_p50_ms:.1f} ms, {fig.gaps_over_100ms} over 100 ms "
            f"({fig.ticks} ticks)",
            f"  loop CPU in a gap     max {fig.busy_max_ms:.1f} ms, {fig.busy_over_100ms} over "
            "100 ms",
            f"  app CPU               {fig.app_cpu_s:.2f} s\n"
            f"  apply() batches       {fig.apply_calls}, longest {fig.apply_max_ms:.1f} ms, "
            f"total {fig.apply_total_ms:.0f} ms",
            f"  in the log            {fig.shown} shown, {fig.undecryptable} undecryptable, "
            f"{fig.reconnects} reconnects",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    about = (__doc__ or "").split("\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.tui_burst", description=about)
    p.add_argument("--count", type=int, default=1000, help="messages in the burst")
    p.add_argument("--limits", choices=("raised", "shipped"), default="raised")
    p.add_argument("--window", type=int, default=64, help="unacknowledged sends at once")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--sender", nargs=3, metavar=("SERVER", "HOME", "ROOM"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.count < 1 or args.window < 1:
        p.error("--count and --window must be at least 1")
    if args.sender:
        server, home, room = args.sender
        asyncio.run(sender(server, Path(home), room, args.count, args.window))
        return 0
    fig = asyncio.run(run(args.count, args.limits, args.window))
    print(report(fig))
    if args.json:
        args.json.write_text(json.dumps(asdict(fig), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
