"""Schemathesis against the OpenAPI of auth and chat, served by a real ``sealchatd all``.

The server is a subprocess on a free loopback port (embedded stores in a temporary
directory); schemathesis reads ``/auth/openapi.json`` and ``/chat/openapi.json`` from it and
sends generated requests, valid and invalid, with a fresh user's token. Checks: no 5xx, and
every response matches its documented schema (status code, content type, body).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import services
from tests.security.helpers import PASSWORD, report

pytestmark = pytest.mark.security

EXAMPLES = 12  # per operation; `SEALCHAT_FUZZ_EXAMPLES` raises it for a longer run
ENDS_SESSION = ("/logout", "/account")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = services.free_port()
    data = tmp_path_factory.mktemp("schemathesis")
    env = {
        **os.environ,
        # Generated logins fail by the hundred from one address: keep the throttle out of
        # the way so the fuzzer's own token keeps working (throttling has its own tests).
        "SEALCHAT_AUTH__THROTTLE_PER_IP": "1000000",
        "SEALCHAT_AUTH__THROTTLE_PER_ACCOUNT": "1000000",
        "SEALCHAT_AUTH__THROTTLE_PER_ACCOUNT_IP": "1000000",
        "SEALCHAT_LOG__LEVEL": "WARNING",
    }
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sealchatd")),
            "all",
            "--data-dir",
            str(data / "d"),
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/auth/health", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None, (data / "server.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "sealchatd all did not start"
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        crashed = [
            line for line in (data / "server.log").read_text().splitlines() if "Traceback" in line
        ]
        assert crashed == [], "the server logged a traceback"


def fresh_token(base: str) -> dict[str, str]:
    uid = "u" + uuid.uuid4().hex[:12]
    r = requests.post(
        base + "/auth/signup",
        json={"id": uid, "passwd": PASSWORD, "email": f"{uid}@example.org"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.post(base + "/auth/login", json={"id": uid, "passwd": PASSWORD}, timeout=30)
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.mark.parametrize("service", ["auth", "chat"])
def test_openapi_conformance_under_generated_requests(server: str, service: str) -> None:
    examples = int(os.environ.get("SEALCHAT_FUZZ_EXAMPLES", EXAMPLES))
    schema = schemathesis.openapi.from_url(f"{server}/{service}/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    headers: dict[str, str] | None = None
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            if headers is None or operation.path.endswith(ENDS_SESSION):
                headers = fresh_token(server)  # a logout or deletion ends the token it used

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=server, session=session, headers=headers, timeout=30)
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except Exception as exc:
                    failures.append(f"{case.method} {case.path}: {str(exc).splitlines()[0][:300]}")

            run()
            if operation.path.endswith(ENDS_SESSION):
                headers = None  # the next operation gets a live token again
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    report(
        f"schemathesis /{service}",
        operations=operations,
        requests=sum(statuses.values()),
        statuses=dict(sorted(statuses.items())),
        server_errors=server_errors,
        violations=len(failures),
    )
    assert server_errors == 0
    assert failures == [], "\n".join(sorted(set(failures))[:30])
