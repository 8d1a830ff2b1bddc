"""The headless ``sealchat`` client, driven inside the lab namespace against the load
balancer's public address, trusting only the lab CA (``SSL_CERT_FILE``)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.harness import ROOT, Lab, LabError

SERVER = "https://192.168.75.10"


@dataclass
class LabClient:
    lab: Lab
    user: str
    home: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    _follow: subprocess.Popen[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALCHAT_")}
        env["SSL_CERT_FILE"] = str(self.lab.workdir / "secrets/ca/ca.crt")
        env["SEALCHAT_PASSPHRASE"] = "lab-" + self.password
        return env

    def _argv(self, *args: str) -> list[str]:
        return [
            str(ROOT / ".venv/bin/sealchat"),
            "--server",
            SERVER,
            "--home",
            str(self.home),
            "--json",
            *args,
        ]

    def run(self, *args: str, stdin: str | None = None) -> list[dict[str, Any]]:
        """One command; its JSON lines, or LabError with the client's own error."""
        out = self.lab.in_lab(
            self._argv(*args), env=self.env, input=stdin, check=False, timeout=120
        )
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 or any("error" in line for line in lines):
            raise LabError(f"{self.user}: sealchat {' '.join(args)}: {out.stdout}{out.stderr}")
        return lines

    def register(self) -> None:
        self.run(
            "register",
            self.user,
            "--email",
            f"{self.user}@lab.example.net",
            "--password-stdin",
            stdin=self.password + "\n",
        )

    def follow(self, room: str) -> None:
        """Keep one WebSocket open (``tail --follow``) and collect what it prints."""
        with (self.lab.workdir / f"follow-{self.user}.jsonl").open("w") as log:
            self._follow = subprocess.Popen(
                ["ip", "netns", "exec", self.lab.ns, *self._argv("tail", "--follow", room)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def stop_following(self) -> list[dict[str, Any]]:
        if self._follow is None:
            return []
        self._follow.send_signal(signal.SIGINT)
        try:
            self._follow.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._follow.kill()
            self._follow.wait()
        self._follow = None
        text = (self.lab.workdir / f"follow-{self.user}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def texts(self, room: str, count: int = 100) -> list[str]:
        return [m["text"] for m in self.run("tail", "--count", str(count), room) if "text" in m]


def wait_for_texts(client: LabClient, room: str, wanted: set[str], timeout: float) -> set[str]:
    """What is still missing from the room's history after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    missing = set(wanted)
    while missing and time.monotonic() < deadline:
        missing = wanted - set(client.texts(room))
        if missing:
            time.sleep(2)
    return missing
