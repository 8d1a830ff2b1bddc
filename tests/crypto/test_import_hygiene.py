"""The crypto core stays free of UI and network frameworks (sans-I/O), checked in a fresh
interpreter so nothing imported by other tests hides a violation."""

from __future__ import annotations

import subprocess
import sys


def test_crypto_core_imports_no_ui_or_network_framework():
    code = (
        "import sys, tui.crypto; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'textual', 'aiohttp', 'requests', 'httpx'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
