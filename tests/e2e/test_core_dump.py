"""A core dump of the server holds no message: canary plaintexts (a text and a file) go from
one real ``sealchat`` process to another through a real ``sealchatd all``, and then the
server's whole memory, dumped with ``gcore``, is searched for them.

A positive control keeps the scan honest: the same dump must contain the user ids the server
did handle. Passwords and tokens are counted and printed, not asserted: the server reads the
password to hash it and signs the tokens, so Python may still hold them in freed memory (see
docs/security.md, "What we do not claim").
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services
from tests.e2e.test_cli import SEALCHATD, person


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = services.free_port()
    proc = subprocess.Popen(
        [SEALCHATD, "all", "--port", str(port), "--data-dir", str(tmp_path / "server")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening on" in line, line
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def dump(pid: int, where: Path) -> bytes:
    gcore = shutil.which("gcore")
    if gcore is None:
        pytest.fail("gcore not found: apt-get install -y gdb", pytrace=False)
    out = subprocess.run(
        [gcore, "-o", str(where / "core"), str(pid)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    core = where / f"core.{pid}"
    assert out.returncode == 0 and core.exists(), out.stdout[-2000:] + out.stderr[-2000:]
    try:
        return core.read_bytes()
    finally:
        core.unlink()


def test_the_server_memory_holds_no_plaintext(server_process, tmp_path):
    url, proc = server_process
    alice, bob = person(url, tmp_path, "alice"), person(url, tmp_path, "bob")
    alice.ok("friends", "add", bob.user)
    bob.ok("friends", "accept", alice.user)
    text = f"CANARY-TEXT-{uuid.uuid4().hex}"
    body = f"CANARY-FILE-{uuid.uuid4().hex}\n".encode() * 64
    src = tmp_path / "canary.txt"
    src.write_bytes(body)
    alice.ok("send", f"@{bob.user}", text)
    alice.json("send-file", f"@{bob.user}", str(src))
    shown = bob.json("tail", f"@{alice.user}", "--save", str(tmp_path / "inbox"))
    assert text in [m.get("text") for m in shown], "bob decrypted what alice sent"
    [saved] = [Path(m["file"]["saved"]) for m in shown if m.get("file")]
    assert saved.read_bytes() == body

    memory = dump(proc.pid, tmp_path)
    secrets = {
        "password": f"password of {alice.user}".encode(),
        "local passphrase": f"local secret of {alice.user}".encode(),
    }
    found = {name: memory.count(value) for name, value in secrets.items()}
    print(f"\n[security] core dump of sealchatd all: {len(memory) / 2**20:.0f} MiB; {found}")

    assert memory.count(alice.user.encode()) > 0, "the scan must see what the server handled"
    assert memory.count(text.encode()) == 0, "a message's plaintext is in the server's memory"
    assert memory.count(body[:40]) == 0, "a file's plaintext is in the server's memory"
    assert found["local passphrase"] == 0, "the client's local passphrase reached the server"
