"""The benchmark harness in CI: a tiny run of every target and scenario, judged on
correctness only (no timing is asserted: this machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadgen import Receiver, check
from bench.targets import Baseline, Client

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"baseline", "socketio", "sealchat-embedded", "sealchat-cluster"}


@pytest.mark.mariadb
@pytest.mark.redis
@pytest.mark.rabbitmq
@pytest.mark.mongo
def test_the_smoke_run_delivers_every_message_once_on_every_target(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--write", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["ok"] is True
    fanout = [r for r in result["runs"] if r["scenario"] == "fanout10"]
    assert {r["target"] for r in fanout} == TARGETS
    for run in fanout:
        assert run["delivered"] == run["expected"] > 0, run
        assert run["problems"] == {}, run
    reconnect = result["reconnect (10% of clients killed mid-stream, then caught up)"]
    assert {r["target"] for r in reconnect} == {"sealchat-embedded", "sealchat-cluster"}
    assert all(r["ok"] and r["killed"] > 0 for r in reconnect), reconnect
    idle = result["idle connections (one server process)"]
    assert {r["target"] for r in idle} == TARGETS
    assert all(r["open"] > 0 for r in idle), idle
    legs = result["broker legs alone"]
    assert {r["leg"] for r in legs} == {"redis pub/sub", "rabbitmq publish+confirm"}
    assert all(r["ok"] for r in legs), legs


async def test_the_check_fails_a_run_that_lost_or_repeated_a_message() -> None:
    """The negative control: a dropped and a doubled delivery are both caught. (Async only
    because a ``Client`` holds a future of the running loop.)"""
    target = Baseline(Path("."))
    receiver = Receiver(target)
    room_msgs = {"r10-0": [1, 2, 3]}
    whole, short, doubled = (Client(i, "r10-0") for i in range(3))
    whole.got, short.got, doubled.got = {1, 2, 3}, {1, 3}, {1, 2, 3}
    doubled.dupes = 1
    verdict = check(receiver, [whole, short, doubled], room_msgs, 3)
    assert verdict["ok"] is False
    assert verdict["problems"] == {"missing": 1, "duplicates": 1}
    assert check(receiver, [whole], room_msgs, 1)["ok"] is True


def test_the_tui_burst_shows_every_message_decrypted(tmp_path: Path) -> None:
    """``bench.tui_burst`` end to end, tiny: real server, real app, the sender's process."""
    out = tmp_path / "tui_burst.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.tui_burst", "--count", "30", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    figures = json.loads(out.read_text())
    assert figures["count"] == 30
    assert figures["shown"] == 31, figures  # the warm-up and the burst, all decrypted
    assert figures["undecryptable"] == 0 and figures["reconnects"] == 0, figures
    assert figures["ticks"] > 0 and figures["apply_calls"] > 0, figures


@pytest.mark.mongo
def test_the_document_inserts_bench_stores_every_message_in_each_layout() -> None:
    """``bench.document_inserts``, tiny: its own SecantusDB, the adapter's layout and one
    with an index dropped; a bad index name is a clear error, not a traceback."""
    command = [sys.executable, "-m", "bench.document_inserts", "--pairs", "1", "--count", "20"]
    command += ["--batch", "10"]
    proc = subprocess.run(
        [*command, "--drop", "msg_id_1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "as the adapter builds it" in lines[0], lines
    assert "without msg_id_1" in lines[1] and "msgs/s" in lines[1], lines
    bad = subprocess.run(
        [*command, "--drop", "no_such_index"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 1
    assert "--drop no_such_index: no such index; there are _id_" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
