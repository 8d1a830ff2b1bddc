"""``sealchat`` as a script runs it: real subprocesses against a ``sealchatd all`` child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import services

BIN = Path(sys.executable).parent
SEALCHAT, SEALCHATD = str(BIN / "sealchat"), str(BIN / "sealchatd")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("sealchatd")
    port = services.free_port()
    proc = subprocess.Popen(
        [SEALCHATD, "all", "--port", str(port), "--data-dir", str(data / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening on" in line, line
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


class Cli:
    """One profile (``--home``) driving ``sealchat`` subprocesses."""

    def __init__(self, server: str, home: Path, user: str) -> None:
        self.server, self.home, self.user = server, home, user

    def run(self, *args: str, stdin: str | None = None, json_out: bool = False):
        flags = ["--server", self.server, "--home", str(self.home)]
        if json_out:
            flags.append("--json")
        return subprocess.run(
            [SEALCHAT, *flags, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SEALCHAT_PASSPHRASE": f"local secret of {self.user}"},
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        r = self.run(*args, stdin=stdin)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    def json(self, *args: str, stdin: str | None = None):
        r = self.run(*args, stdin=stdin, json_out=True)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def person(server_url: str, tmp_path: Path, name: str) -> Cli:
    import uuid

    cli = Cli(server_url, tmp_path / name, f"{name}{uuid.uuid4().hex[:8]}")
    out = cli.ok(
        "register", cli.user, "--email", f"{cli.user}@example.org", "--password-stdin",
        stdin=f"password of {cli.user}\n",
    )  # fmt: skip
    assert f"logged in as {cli.user}" in out
    return cli


def test_register_login_whoami_logout(server_url, tmp_path):
    alice = person(server_url, tmp_path, "alice")
    [me] = alice.json("whoami")
    assert me["user"] == alice.user and me["server"] == server_url and me["device"]
    [devices] = alice.json("devices")
    assert [d["device"] for d in devices] == [me["device"]] and devices[0]["this"]
    assert alice.ok("logout").strip() == f"{alice.user} logged out"
    r = alice.run("rooms")
    assert r.returncode == 1 and f"sealchat login {alice.user}" in r.stderr
    # Wrong password: exit 1, a message that says so, and the password is nowhere in it.
    r = alice.run("login", alice.user, "--password-stdin", stdin="not it\n")
    assert r.returncode == 1 and "wrong id or password" in r.stderr
    assert "not it" not in r.stderr + r.stdout
    alice.ok("login", alice.user, "--password-stdin", stdin=f"password of {alice.user}\n")
    [again] = alice.json("whoami")
    assert again["device"] == me["device"], "logging in again keeps the device"
    # A secret on the command line is not an option there is.
    r = alice.run("login", alice.user, f"password of {alice.user}")
    assert r.returncode == 2


def test_usage_errors_exit_2_and_secrets_need_a_source(server_url, tmp_path):
    r = subprocess.run(
        [SEALCHAT, "rooms", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    # Without a terminal the interactive client refuses at once instead of waiting for keys.
    r = subprocess.run(
        [SEALCHAT], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )
    assert r.returncode == 2 and "needs a terminal" in r.stderr
    env = {k: v for k, v in os.environ.items() if k != "SEALCHAT_PASSPHRASE"}
    r = subprocess.run(
        [SEALCHAT, "--server", server_url, "--home", str(tmp_path / "x"), "login", "nobody",
         "--password-stdin"],
        input="whatever password\n", capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "SEALCHAT_PASSPHRASE" in r.stderr


def test_friends_rooms_send_and_tail(server_url, tmp_path):
    alice, bob, carol = (person(server_url, tmp_path, n) for n in ("alice", "bob", "carol"))
    assert "friend request sent" in alice.ok("friends", "add", bob.user)
    [pending] = bob.json("friends")
    assert [p["id"] for p in pending["incoming"]] == [alice.user]
    bob.ok("friends", "accept", alice.user)
    alice.ok("friends", "add", carol.user)
    carol.ok("friends", "accept", alice.user)

    # 1:1 by @user, created on first use; text from the argument and from stdin.
    alice.ok("send", f"@{bob.user}", "hello bob")
    alice.ok("send", f"@{bob.user}", stdin="second line from stdin\n")
    lines = bob.json("tail", f"@{alice.user}", "--count", "10")
    assert [m["text"] for m in lines] == ["hello bob", "second line from stdin"]
    assert {m["sender"] for m in lines} == {alice.user}
    out = bob.ok("tail", f"@{alice.user}", "--count", "1")
    assert out.strip().endswith(f"{alice.user}: second line from stdin")

    # A group by name: create, invite, join, talk, kick.
    [room] = alice.json("rooms", "create", "night owls", "--topic", "late")
    alice.ok("rooms", "invite", "night owls", bob.user)
    alice.ok("rooms", "invite", "night owls", carol.user)
    bob.ok("rooms", "join", "night owls")
    carol.ok("rooms", "join", room["id"])
    bob.ok("send", "night owls", "bob says hi")
    carol.ok("send", "night owls", "carol too")
    lines = alice.json("tail", "night owls")
    assert [m.get("text") for m in lines] == ["bob says hi", "carol too"], lines
    alice.ok("rooms", "kick", "night owls", carol.user)
    alice.ok("send", "night owls", "carol is gone")
    assert [m["text"] for m in bob.json("tail", "night owls", "--count", "1")] == ["carol is gone"]
    r = carol.run("tail", room["id"])
    assert r.returncode == 1  # not a member any more: the server says not found

    # Leaving asks first; without a terminal it needs --yes.
    r = bob.run("rooms", "leave", "night owls")
    assert r.returncode == 1 and "--yes" in r.stderr
    bob.ok("rooms", "leave", "night owls", "--yes")
    [listed] = bob.json("rooms", "list")
    assert room["id"] not in [x["id"] for x in listed["rooms"]]
    r = alice.run("rooms", "delete", "night owls")
    assert r.returncode == 1
    alice.ok("rooms", "delete", "night owls", "--yes")

    # Blocks.
    bob.ok("friends", "block", alice.user)
    [state] = bob.json("friends")
    assert [b["id"] for b in state["blocked"]] == [alice.user] and state["friends"] == []
    bob.ok("friends", "unblock", alice.user)


def test_send_file_and_verify(server_url, tmp_path):
    alice, bob = person(server_url, tmp_path, "alice"), person(server_url, tmp_path, "bob")
    alice.ok("friends", "add", bob.user)
    bob.ok("friends", "accept", alice.user)
    src = tmp_path / "report.txt"
    src.write_bytes(b"quarterly numbers\n" * 1000)
    [sent] = alice.json("send-file", f"@{bob.user}", str(src))
    assert sent["size"] == src.stat().st_size
    [shown] = bob.json("tail", f"@{alice.user}", "--save", str(tmp_path / "inbox"))
    saved = Path(shown["file"]["saved"])
    assert saved.read_bytes() == src.read_bytes() and saved.parent == tmp_path / "inbox"

    [a_view] = alice.json("verify", bob.user)
    [b_view] = bob.json("verify", alice.user)
    assert a_view["safety_number"] == b_view["safety_number"]
    assert len(a_view["safety_number"].split()) == 12 and not a_view["held"]


def test_tail_follow_prints_what_arrives_and_stops_on_ctrl_c(server_url, tmp_path):
    alice, bob = person(server_url, tmp_path, "alice"), person(server_url, tmp_path, "bob")
    alice.ok("friends", "add", bob.user)
    bob.ok("friends", "accept", alice.user)
    alice.ok("send", f"@{bob.user}", "before following")
    follow = subprocess.Popen(
        [SEALCHAT, "--server", server_url, "--home", str(bob.home), "--json", "tail",
         f"@{alice.user}", "--follow", "--count", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SEALCHAT_PASSPHRASE": f"local secret of {bob.user}"},
        preexec_fn=services.sigint_as_in_a_terminal,
    )  # fmt: skip
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())
        assert first["text"] == "before following"
        alice.ok("send", f"@{bob.user}", "while following")
        live = json.loads(follow.stdout.readline())
        assert live["text"] == "while following" and live["sender"] == alice.user
    finally:
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=60)
    assert follow.returncode == 130, err


def test_an_unreachable_server_says_what_to_check(tmp_path):
    port = services.free_port()
    r = subprocess.run(
        [SEALCHAT, "--server", f"http://127.0.0.1:{port}", "--home", str(tmp_path / "p"),
         "register", "someone", "--email", "someone@example.org", "--password-stdin"],
        input="long enough password\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "SEALCHAT_PASSPHRASE": "pp"},
    )  # fmt: skip
    assert r.returncode == 1 and "is the server running" in r.stderr, r.stderr
