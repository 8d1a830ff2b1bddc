"""The suite's own bookkeeping: what a killed run left behind is recognised, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import services


def test_only_slices_of_runs_whose_process_is_gone_count_as_left_behind():
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone = int(child.stdout)  # exited: no process has this pid (reuse within the test: unlikely)
    assert services.left_by_dead_run(f"sealchat-test-{gone:x}x1a2b3c", "sealchat-test-")
    assert not services.left_by_dead_run(f"sealchat-test-{services.RUN_ID}", "sealchat-test-")
    assert not services.left_by_dead_run(f"sealchat-test-{os.getppid():x}x1a2b3c", "sealchat-test-")
    assert not services.left_by_dead_run("sealchat-test-9f3e2a7c1b", "sealchat-test-"), "old names"
    assert not services.left_by_dead_run(f"sealchat-bench-{gone:x}x1a2b3c", "sealchat-test-")
    assert not services.left_by_dead_run("sealchat-test-zzxq", "sealchat-test-")
