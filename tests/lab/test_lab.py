"""The cluster, for real: seven Debian 12 containers converged by playbooks/site.yml.

Run with ``make lab-test`` (root, systemd-nspawn, mmdebstrap). Not in the default run:
``-m lab`` selects it. Timings of every step are printed at the end and kept in
``<workdir>/timings.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.lab.clients import LabClient, wait_for_texts
from tests.lab.harness import ROOT, Lab, load_machines

pytestmark = pytest.mark.lab


def _require_tools() -> None:
    missing = [
        t
        for t in ("mmdebstrap", "systemd-nspawn", "ip", "ssh-keygen", "ssh")
        if shutil.which(t) is None
    ]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: apt-get install -y mmdebstrap "
            "systemd-container iproute2 openssh-client",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("the lab needs root (network namespaces, systemd-nspawn)", pytrace=False)
    if not (ROOT / ".venv-ansible/bin/ansible-playbook").exists():
        pytest.fail("no .venv-ansible: run `make ansible-venv`", pytrace=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _require_tools()
    lab = Lab(load_machines(), tmp_path_factory.mktemp("lab"))
    try:
        lab.up()
        yield lab
    finally:
        start = time.monotonic()
        problems = lab.down()
        lab.timings["teardown"] = round(time.monotonic() - start, 1)
        (lab.workdir / "timings.json").write_text(json.dumps(lab.timings, indent=1))
        print(f"\nlab timings (s): {json.dumps(lab.timings)}")
        for note in lab.notes:
            print(f"lab: {note}")
        assert not problems, problems


def _timed(lab: Lab, step: str, start: float) -> None:
    lab.timings[step] = round(time.monotonic() - start, 1)


def test_converge_twice_then_idempotent(lab: Lab) -> None:
    start = time.monotonic()
    first = lab.ansible_playbook("site.yml", "converge-1")
    _timed(lab, "converge_1", start)
    assert first.returncode == 0, f"first converge failed: see {first.log}"
    assert set(first.hosts) == {m.name for m in lab.machines}, first.hosts

    start = time.monotonic()
    second = lab.ansible_playbook("site.yml", "converge-2")
    _timed(lab, "converge_2", start)
    assert second.returncode == 0, f"second converge failed: see {second.log}"
    assert second.changed == {m.name: 0 for m in lab.machines}, (
        f"not idempotent: {second.changed} {second.changed_tasks()}; see {second.log}"
    )


def test_only_the_load_balancer_faces_the_public_network(lab: Lab) -> None:
    """From the public side, lb answers 443 and 80; auth's port is closed there."""
    lab.wait_port("192.168.75.10", 443, timeout=30)
    lab.wait_port("192.168.75.10", 80, timeout=30)
    # mon's public address only answers the monitoring UI port.
    probe = lab.in_lab(["bash", "-c", "exec 3<>/dev/tcp/192.168.75.20/3306"], check=False)
    assert probe.returncode != 0


def test_end_to_end_through_the_load_balancer(lab: Lab) -> None:
    """Two clients over TLS (lab CA) register, befriend, chat in a group across both chat
    nodes; chat1 is stopped mid-conversation and nothing is lost."""
    start = time.monotonic()
    alice = LabClient(lab, "alice", lab.workdir / "client-alice")
    bob = LabClient(lab, "bob", lab.workdir / "client-bob")
    alice.register()
    bob.register()
    alice.run("friends", "add", "bob")
    bob.run("friends", "accept", "alice")
    alice.run("rooms", "create", "lab")
    alice.run("rooms", "invite", "lab", "bob")
    bob.run("rooms", "join", "lab")
    bob.follow("lab")
    time.sleep(3)  # let the follower's socket authenticate before the first message

    sent: list[str] = []
    for i in range(4):
        sent.append(f"before {i} {uuid.uuid4().hex[:6]}")
        alice.run("send", "lab", sent[-1])
    sent.append("bob says hi")
    bob.run("send", "lab", sent[-1])

    lab.ssh("chat1", "systemctl stop sealchat-chat")
    try:
        for i in range(4):
            sent.append(f"after {i} {uuid.uuid4().hex[:6]}")
            alice.run("send", "lab", sent[-1])
        missing = wait_for_texts(bob, "lab", set(sent), timeout=60)
        assert not missing, f"lost after stopping chat1: {missing}"
        assert set(alice.texts("lab")) >= set(sent)
    finally:
        lab.ssh("chat1", "systemctl start sealchat-chat")
        # Back before the next test reads its metrics (it answers once it has started).
        lab.wait_port("192.168.123.12", 8082, timeout=120)
    live = {m.get("text") for m in bob.stop_following()}
    # Delivered live on bob's one socket (reconnecting if it was on chat1), all decrypted.
    assert set(sent) <= live, f"not delivered live: {set(sent) - live}"

    used = lab.ssh("lb", "grep -o 'GET /chat/ws.* upstream=[0-9.:]*' /var/log/nginx/access.log")
    upstreams = {line.rsplit("=", 1)[1] for line in used.stdout.split() if "=" in line}
    assert {"192.168.123.12:8082", "192.168.123.13:8082"} <= upstreams, upstreams
    _timed(lab, "end_to_end", start)


AGENT_QUERY = r"""
import socket, struct, sys
def get(host, key):
    payload = key.encode()
    with socket.create_connection((host, 10050), timeout=10) as s:
        s.sendall(b"ZBXD\x01" + struct.pack("<Q", len(payload)) + payload)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data[13:].decode(errors="replace")
for arg in sys.argv[1:]:
    host, key = arg.split("|", 1)
    print(f"{host}|{key}|{get(host, key)}")
"""


def test_zabbix_agents_answer_the_server(lab: Lab) -> None:
    """Every agent answers the Zabbix server's address (from mon) for the host keys and the
    application keys of the services it runs."""
    start = time.monotonic()
    ports = {
        "auth_nodes": ("auth", 8081),
        "chat_nodes": ("chat", 8082),
        "log_nodes": ("archiver", 8084),
    }
    queries = []
    for m in lab.machines:
        queries.append(f"{m.private_ip}|agent.ping")
        for group, (service, port) in ports.items():
            if group in m.groups:
                url = f"http://{m.private_ip}:{port}/{service}/metrics"
                queries.append(f"{m.private_ip}|sealchat.metric[{url},process_open_fds]")
    script = lab.workdir / "agent_query.py"
    script.write_text(AGENT_QUERY)
    copy = lab.in_lab(
        [
            "scp",
            "-i",
            lab.key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            script,
            "root@192.168.123.20:/tmp/agent_query.py",
        ]
    )
    assert copy.returncode == 0
    out = lab.ssh("mon", "python3 /tmp/agent_query.py " + " ".join(f"'{q}'" for q in queries))
    answers = dict(line.rsplit("|", 1) for line in out.stdout.splitlines())
    for query in queries:
        answer = answers[query]
        if query.endswith("agent.ping"):
            assert answer == "1", (query, answer)
        else:
            assert not answer.startswith("ZBX_NOTSUPPORTED"), (query, answer)
            float(answer)
    _timed(lab, "zabbix", start)
