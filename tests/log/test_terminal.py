"""``sealchatd all`` runs the log service too, and ``sealchatd logs`` reads it as an operator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services

SEALCHATD = str(Path(sys.executable).with_name("sealchatd"))
PASSWORD = "a long operator passphrase"


def call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def account(base: str, uid: str) -> str:
    call(f"{base}/auth/signup", {"id": uid, "passwd": PASSWORD, "email": f"{uid}@example.org"})
    return call(f"{base}/auth/login", {"id": uid, "passwd": PASSWORD})["token"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``sealchatd all`` on a free port with one operator; (base URL, operator id)."""
    port = services.free_port()
    operator = "op" + uuid.uuid4().hex[:8]
    env = {**os.environ, "SEALCHAT_AUTH__ADMINS": json.dumps([operator])}
    proc = subprocess.Popen(
        [SEALCHATD, "all", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "/log" in line, line
        yield f"http://127.0.0.1:{port}", operator
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err


def logs(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEALCHATD, "logs", *args], capture_output=True, text=True, timeout=timeout
    )


def eventually_logged(base: str, token: str, **query: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        url = f"{base}/log/events?" + "&".join(f"{k}={v}" for k, v in query.items())
        found = call(url, token=token)["events"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_logs_shows_the_event_log_to_operators_only(server, tmp_path):
    base, operator = server
    assert call(f"{base}/log/health") == {"message": "alive"}
    token = account(base, operator)
    assert eventually_logged(base, token, id=operator, category="signin")
    token_file = tmp_path / "op.token"
    token_file.write_text(token)

    table = logs("--url", base, "--token-file", str(token_file), "--id", operator)
    assert table.returncode == 0, table.stderr
    assert "signin" in table.stdout and "signup" in table.stdout and operator in table.stdout
    assert token not in table.stdout + table.stderr

    lines = logs("--url", base, "--token-file", str(token_file), "--category", "service", "--json")
    assert lines.returncode == 0, lines.stderr
    records = [json.loads(line) for line in lines.stdout.splitlines()]
    assert {r["server"] for r in records} >= {"auth", "chat", "archiver", "log"}
    assert all(r["category"] == "service" for r in records)

    user = "u" + uuid.uuid4().hex[:8]
    user_token = tmp_path / "user.token"
    user_token.write_text(account(base, user))
    refused = logs("--url", base, "--token-file", str(user_token))
    assert refused.returncode == 2 and "403" in refused.stderr and "auth.admins" in refused.stderr
    nobody = logs("--url", base)
    assert nobody.returncode == 2 and "--user" in nobody.stderr
    down = logs("--url", "http://127.0.0.1:9", "--token-file", str(token_file))
    assert down.returncode == 2 and "is sealchatd running" in down.stderr


def test_logs_follow_prints_new_records_as_they_come(server, tmp_path):
    base, operator = server
    token = account(base, operator)
    token_file = tmp_path / "op.token"
    token_file.write_text(token)
    follow = subprocess.Popen(
        [SEALCHATD, "logs", "--url", base, "--token-file", str(token_file), "--follow",
         "--interval", "0.3", "--category", "signup", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=services.sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        newcomer = "u" + uuid.uuid4().hex[:8]
        time.sleep(1.0)  # let it print what exists, then sign someone up
        account(base, newcomer)
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while not any(newcomer in line for line in seen):
            assert time.monotonic() < deadline, seen
            line = follow.stdout.readline()  # type: ignore[union-attr]
            assert line, follow.stderr.read()  # type: ignore[union-attr]
            seen.append(line)
        assert sum(newcomer in line for line in seen) == 1
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=15)
    assert follow.returncode == 0


def test_metrics_of_every_service_on_the_all_port(server):
    base, _ = server
    for service in ("auth", "chat", "archiver", "log"):
        with urllib.request.urlopen(f"{base}/{service}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert "process_resident_memory_bytes" in text
    try:
        call(f"{base}/log/events")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    else:
        raise AssertionError("the event log answered without a login")
