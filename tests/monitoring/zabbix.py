"""A real ``zabbix_agentd`` for one test: its own config, pid and log files in a temp dir,
the project's UserParameter file, a free loopback port; stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests import services

ROOT = Path(__file__).resolve().parents[2]
ZABBIX = ROOT / "monitoring" / "zabbix"
TEMPLATE = ZABBIX / "templates" / "sealchat.yaml"
USERPARAMETERS = ZABBIX / "userparameter_sealchat.conf"
SCRIPT = ZABBIX / "sealchat_metric.py"
INSTALLED_SCRIPT = "/usr/libexec/sealchat/sealchat_metric.py"
AGENTD = shutil.which("zabbix_agentd") or "/usr/sbin/zabbix_agentd"


def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))["zabbix_export"]


@contextmanager
def running_agent(tmp: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    """Start the agent; yield its port; stop it by pid (SIGTERM, then SIGKILL)."""
    if not Path(AGENTD).exists():
        pytest.fail("zabbix_agentd not found: apt-get install -y zabbix-agent", pytrace=False)
    # The UserParameter file as shipped, with the helper where this checkout keeps it
    # (Ansible installs it at INSTALLED_SCRIPT; nothing else in the file changes).
    params = USERPARAMETERS.read_text(encoding="utf-8")
    assert INSTALLED_SCRIPT in params
    (tmp / "userparameter_sealchat.conf").write_text(params.replace(INSTALLED_SCRIPT, str(SCRIPT)))
    port = services.free_port()
    config = tmp / "zabbix_agentd.conf"
    config.write_text(
        "\n".join(
            [
                f"PidFile={tmp / 'agent.pid'}",
                "LogType=file",
                f"LogFile={tmp / 'agent.log'}",
                "DebugLevel=3",
                "ListenIP=127.0.0.1",
                f"ListenPort={port}",
                "Server=127.0.0.1",
                "ServerActive=",
                "Hostname=sealchat-test",
                "StartAgents=3",
                "Timeout=10",
                "AllowRoot=1",
                f"Include={tmp / 'userparameter_sealchat.conf'}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        [AGENTD, "-f", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                log = (tmp / "agent.log").read_text() if (tmp / "agent.log").exists() else ""
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"zabbix_agentd did not start:\n{log[-2000:]}", pytrace=False)
                time.sleep(0.1)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
