"""``sealchatd`` as an operator runs it: real processes, real ports, clean exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests import services

SEALCHATD = str(Path(sys.executable).with_name("sealchatd"))


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEALCHATD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_version():
    assert run("--version").stdout.strip() == "sealchatd 0.1.0"


def test_all_serves_and_stops_on_ctrl_c(tmp_path):
    port = services.free_port()
    proc = subprocess.Popen(
        [SEALCHATD, "all", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line and "Ctrl+C" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/health", timeout=5) as r:
            assert json.load(r) == {"message": "alive"}
        key = tmp_path / "data" / "secrets" / "jwt-ed25519.pem"
        assert (key.stat().st_mode & 0o777) == 0o600
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


FROZEN_AT_STARTUP = """
import asyncio, gc, sys
from aiohttp import web
from backend.cli import EVERY_SERVICE, serving_app
from backend.common.settings import load_settings

async def main():
    settings = load_settings(None, {"data_dir": sys.argv[1]})
    runner = web.AppRunner(serving_app(settings, EVERY_SERVICE))
    before = gc.get_freeze_count()
    await runner.setup()  # the startup signals, as run_app runs them
    try:
        print(before, gc.get_freeze_count())
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


def test_the_served_app_freezes_its_startup_heap(tmp_path):
    """What exists once the services have started is moved out of the cyclic GC's reach
    (in a process of its own: a frozen heap would stay frozen for the rest of the suite)."""
    out = subprocess.run(
        [sys.executable, "-c", FROZEN_AT_STARTUP, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert before == 0 and after > 50_000


def test_bad_setting_stops_with_one_line(tmp_path):
    r = run("all", "--data-dir", str(tmp_path), env={"SEALCHAT_SERVER__MAX_BODY_BYTES": "tiny"})
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "server.max_body_bytes (SEALCHAT_SERVER__MAX_BODY_BYTES)" in r.stderr


def test_gen_key_never_overwrites(tmp_path):
    key = tmp_path / "k.pem"
    first = run("gen-key", str(key))
    assert first.returncode == 0 and "kid" in first.stdout
    assert (key.stat().st_mode & 0o777) == 0o600
    again = run("gen-key", str(key))
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.mariadb
@pytest.mark.redis
@pytest.mark.rabbitmq
def test_cluster_auth_refuses_missing_key_and_unmigrated_schema(
    tmp_path, mariadb_url, redis_url, rabbitmq_url
):
    env = {
        "SEALCHAT_MODE": "cluster",
        "SEALCHAT_DATABASE__URL": mariadb_url,
        "SEALCHAT_REDIS__URL": redis_url,
        "SEALCHAT_RABBITMQ__URL": rabbitmq_url,
        "SEALCHAT_SERVER__PORT": str(services.free_port()),
    }
    r = run("auth", env=env)
    assert r.returncode == 2
    assert "auth.signing_keys" in r.stderr or "sealchatd migrate" in r.stderr, r.stderr
    key = tmp_path / "k.pem"
    run("gen-key", str(key))
    env["SEALCHAT_AUTH__SIGNING_KEYS"] = json.dumps([str(key)])
    fresh_db = mariadb_url.rsplit("/", 1)[0] + "/" + "sealchat_cli_" + services.RUN_ID
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `sealchat_cli_{services.RUN_ID}`")
    try:
        env["SEALCHAT_DATABASE__URL"] = fresh_db
        r = run("auth", env=env)
        assert r.returncode == 2 and "run `sealchatd migrate`" in r.stderr, r.stderr
        r = run("migrate", env=env)
        assert r.returncode == 0 and "schema at revision" in r.stdout, r.stderr
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `sealchat_cli_{services.RUN_ID}`")
        conn.close()
