"""A short run of each atheris target (``make fuzz`` runs them for minutes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.helpers import report

pytestmark = pytest.mark.security

FUZZ = Path(__file__).parent / "fuzz"


@pytest.mark.parametrize("target", ["fuzz_codec.py", "fuzz_jwt.py"])
def test_fuzz_target_smoke(target: str, tmp_path: Path) -> None:
    runs = 10_000
    r = subprocess.run(
        [sys.executable, str(FUZZ / target), f"-runs={runs}", "-max_total_time=60"],
        cwd=tmp_path,  # libFuzzer writes crash-* files into its working directory
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    done = re.search(r"Done (\d+) runs in (\d+) second", r.stderr)
    assert r.returncode == 0 and done, r.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*"))
    report(f"atheris {target}", runs=done.group(1), seconds=done.group(2), crashes=0)
