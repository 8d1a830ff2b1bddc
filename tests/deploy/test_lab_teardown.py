"""The lab's teardown with stand-ins for nspawn (child processes this test starts and ends):
a container whose halt failed inside gets the second SIGTERM that powers it off at once,
instead of waiting out the deadline and being SIGKILLed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.lab.harness import Lab

# Like nspawn with a container inside: the first SIGTERM starts the container's shutdown,
# which here either finishes or ends the way a failed halt does (the console says so, and
# nothing more happens); a second SIGTERM ends it at once.
STAND_IN = textwrap.dedent(
    """
    import signal, sys, time
    halt_fails = sys.argv[1] == "stuck"
    console = open(sys.argv[2], "a", buffering=1)
    terms = 0
    def on_term(_sig, _frame):
        global terms
        terms += 1
        if terms == 1 and halt_fails:
            console.write("[DEPEND] Dependency failed for halt.target - System Halt.\\n")
            return
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    console.write("up\\n")
    while True:
        time.sleep(0.05)
    """
)


def _start(lab: Lab, name: str, behaviour: str) -> subprocess.Popen[bytes]:
    console = lab.workdir / f"{name}.console.log"
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, behaviour, str(console)])
    deadline = time.monotonic() + 10
    while not (console.is_file() and console.read_text().startswith("up")):
        assert time.monotonic() < deadline, "the stand-in did not start"
        time.sleep(0.05)
    lab._procs[name] = proc
    return proc


def test_a_container_whose_halt_failed_is_powered_off_by_a_second_sigterm(
    tmp_path: Path,
) -> None:
    lab = Lab(machines=[], workdir=tmp_path)
    procs = [_start(lab, "stuck", "stuck"), _start(lab, "fine", "fine")]
    try:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        lab._await_halts(began + 60)
        assert time.monotonic() - began < 30  # not the deadline, nor its 30 s of grace
        assert [proc.poll() for proc in procs] == [0, 0]
        assert lab.notes == ["stuck: powered off by a second SIGTERM"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
