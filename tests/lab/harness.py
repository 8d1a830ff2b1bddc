"""The lab: Debian 12 containers with their own systemd, on two bridges in a network namespace
with no route out, converged by the project's Ansible as if they were the Vagrant machines.

Facts this is built on (measured on the CI machines): ``mmdebstrap --variant=minbase`` builds
the image in well under a minute; ``systemd-nspawn -b --register=no --keep-unit
--network-namespace-path=/run/netns/HOST`` boots it (a plain ``-b`` has no system bus here, and
``ip netns exec`` breaks its cgroups). Package registries are reached only through the
harness's proxy (``tests/lab/proxy.py``). Everything the lab starts is recorded by pid and
ended by that pid; every namespace and directory it made is removed by ``down()``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
ANSIBLE_VENV = Path(os.environ.get("SEALCHAT_ANSIBLE_VENV", ROOT / ".venv-ansible"))
CACHE = Path(os.environ.get("SEALCHAT_LAB_CACHE", "/var/tmp/sealchat-lab"))
IMAGE_PACKAGES = (
    "systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,sudo,iproute2,"
    "ca-certificates,nftables,procps"
)
PRIVATE_GW, PUBLIC_GW = "192.168.123.1", "192.168.75.1"
PROXY_PORT = 3128
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)


class LabError(RuntimeError):
    """A step of the lab failed; the message says which and where its log is."""


@dataclass(frozen=True)
class Machine:
    name: str
    private_ip: str
    public_ip: str | None
    groups: tuple[str, ...]


@dataclass
class Recap:
    """One ansible-playbook run: per-host counts and where its output is."""

    returncode: int
    hosts: dict[str, dict[str, int]]
    log: Path

    @property
    def changed(self) -> dict[str, int]:
        return {h: c["changed"] for h, c in self.hosts.items()}

    def changed_tasks(self) -> list[str]:
        """``host: task`` for every task the run reported changed (what broke idempotence)."""
        out, task = [], "?"
        for line in self.log.read_text().splitlines():
            if line.startswith("TASK ["):
                task = line[6:].split("]", 1)[0]
            elif line.startswith("changed: ["):
                out.append(f"{line[10:].split(']', 1)[0]}: {task}")
        return out


def run(argv: Sequence[str | Path], **kw: Any) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its output is in the error when it does not."""
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kw)
    if out.returncode != 0:
        raise LabError(
            f"{' '.join(map(str, argv))} failed ({out.returncode}): {out.stderr[-2000:]}"
        )
    return out


def load_machines() -> list[Machine]:
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    out = run([ANSIBLE_VENV / "bin/python", "-c", code, ROOT / "vagrant/machines.yml"])
    return [
        Machine(m["name"], m["private_ip"], m.get("public_ip"), tuple(m["groups"]))
        for m in json.loads(out.stdout)["machines"]
    ]


def base_image() -> Path:
    """The minbase bookworm image as a tar, built once and cached (rebuilt if the list changes)."""
    tag = uuid.uuid5(uuid.NAMESPACE_URL, IMAGE_PACKAGES).hex[:8]
    tar = CACHE / f"bookworm-{tag}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(tar.stem + ".part.tar")
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--format=tar",
                f"--include={IMAGE_PACKAGES}",
                "bookworm",
                part,
                "http://deb.debian.org/debian",
            ],
            timeout=900,
        )
        part.rename(tar)
    return tar


@dataclass
class Lab:
    machines: list[Machine]
    workdir: Path
    lab_id: str = field(default_factory=lambda: uuid.uuid4().hex[:4])
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What went unusually but harmlessly (printed with the timings)."""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _netns: list[str] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return f"scl{self.lab_id}"

    def host_ns(self, name: str) -> str:
        return f"scl{self.lab_id}-{name}"

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    # -- bring up -------------------------------------------------------------------------

    def up(self) -> None:
        start = time.monotonic()
        image = base_image()
        self.timings["image"] = round(time.monotonic() - start, 1)
        start = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key])
        self._network()
        self._start_proxy()
        for index, m in enumerate(self.machines):
            self._host_network(index, m)
            self._rootfs(image, m)
            self._boot(m)
        for m in self.machines:
            self.wait_port(m.private_ip, 22, timeout=120)
        self.timings["boot"] = round(time.monotonic() - start, 1)

    def _ip(self, *args: str) -> None:
        run(["ip", *args])

    def _network(self) -> None:
        self._ip("netns", "add", self.ns)
        self._netns.append(self.ns)
        self._ip("-n", self.ns, "link", "set", "lo", "up")
        for bridge, gw in (("brpriv", PRIVATE_GW), ("brpub", PUBLIC_GW)):
            self._ip("-n", self.ns, "link", "add", bridge, "type", "bridge")
            self._ip("-n", self.ns, "addr", "add", f"{gw}/24", "dev", bridge)
            self._ip("-n", self.ns, "link", "set", bridge, "up")

    def _host_network(self, index: int, m: Machine) -> None:
        hns = self.host_ns(m.name)
        self._ip("netns", "add", hns)
        self._netns.append(hns)
        self._ip("-n", hns, "link", "set", "lo", "up")
        links = [("eth0", "brpriv", m.private_ip)]
        if m.public_ip:
            links.append(("eth1", "brpub", m.public_ip))
        for n, (ifname, bridge, ip) in enumerate(links):
            outer = f"v{self.lab_id}{index}{n}"
            self._ip(
                "-n",
                self.ns,
                "link",
                "add",
                outer,
                "type",
                "veth",
                "peer",
                "name",
                ifname,
                "netns",
                hns,
            )
            self._ip("-n", self.ns, "link", "set", outer, "master", bridge, "up")
            self._ip("-n", hns, "addr", "add", f"{ip}/24", "dev", ifname)
            self._ip("-n", hns, "link", "set", ifname, "up")

    def _rootfs(self, image: Path, m: Machine) -> None:
        root = self.workdir / "hosts" / m.name
        root.mkdir(parents=True)
        run(["tar", "-C", root, "-xf", image])
        (root / "etc/hostname").write_text(f"{m.name}\n")
        hosts = (root / "etc/hosts").read_text() if (root / "etc/hosts").exists() else ""
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {m.name}\n" + hosts)
        # The machine's own CA certificates: where HTTPS to the registries is re-signed on the
        # way out, the hosts must trust what the host trusts (and keep trusting it after
        # ca-certificates rebuilds its bundle).
        local_cas = root / "usr/local/share/ca-certificates"
        local_cas.mkdir(parents=True, exist_ok=True)
        for ca in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy2(ca, local_cas / ca.name)
        bundle = "etc/ssl/certs/ca-certificates.crt"
        shutil.copy2(f"/{bundle}", root / bundle)
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        (ssh / "authorized_keys").chmod(0o600)

    def _boot(self, m: Machine) -> None:
        with (self.workdir / f"{m.name}.console.log").open("wb") as log:
            self._procs[m.name] = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "-b",
                    "--register=no",
                    "--keep-unit",
                    f"--network-namespace-path=/run/netns/{self.host_ns(m.name)}",
                    "-D",
                    str(self.workdir / "hosts" / m.name),
                    "-M",
                    m.name,
                    # Its own network namespace only: lets nftables load the host firewall.
                    "--capability=CAP_NET_ADMIN",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _start_proxy(self) -> None:
        with (self.workdir / "proxy.log").open("wb") as log:
            self._procs["proxy"] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.lab.proxy",
                    "--netns",
                    self.ns,
                    "--listen",
                    f"{PRIVATE_GW}:{PROXY_PORT}",
                    "--stats",
                    str(self.workdir / "proxy.json"),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_port(PRIVATE_GW, PROXY_PORT, timeout=30)

    # -- inside the lab -------------------------------------------------------------------

    def in_lab(
        self,
        argv: Sequence[str | Path],
        *,
        timeout: float = 600,
        env: dict[str, str] | None = None,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the lab's namespace (it sees only the lab's two networks)."""
        full = ["ip", "netns", "exec", self.ns, *map(str, argv)]
        out = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            input=input,
        )
        if check and out.returncode != 0:
            raise LabError(f"{' '.join(full)} failed: {out.stdout[-3000:]}{out.stderr[-3000:]}")
        return out

    def wait_port(self, ip: str, port: int, *, timeout: float) -> None:
        probe = f"exec 3<>/dev/tcp/{ip}/{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_lab(["bash", "-c", probe], check=False, timeout=10).returncode == 0:
                return
            time.sleep(1)
        raise LabError(f"{ip}:{port} did not open within {timeout} s (see {self.workdir})")

    def ssh(
        self, host: str, command: str, *, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        ip = next(m.private_ip for m in self.machines if m.name == host)
        return self.in_lab(
            [
                "ssh",
                "-i",
                self.key,
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                f"root@{ip}",
                command,
            ],
            timeout=timeout,
            check=check,
        )

    def ansible_playbook(
        self, playbook: str, name: str, *extra: str, timeout: float = 3600
    ) -> Recap:
        """Converge from inside the lab; the output goes to ``<workdir>/<name>.log``."""
        log = self.workdir / f"{name}.log"
        env = dict(os.environ)
        env.update(
            PATH=f"{ANSIBLE_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=120s "
            "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.workdir / "facts"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
        )
        argv = [
            ANSIBLE_VENV / "bin/ansible-playbook",
            "-i",
            ANSIBLE_DIR / "inventories/lab",
            ANSIBLE_DIR / "playbooks" / playbook,
            "-e",
            f"@{Path(__file__).with_name('lab-vars.yml')}",
            "-e",
            f"lab_ssh_key={self.key}",
            "-e",
            f"cluster_secrets_dir={self.workdir / 'secrets'}",
            *extra,
        ]
        # SEALCHAT_LAB_EXTRA_VARS: JSON extra vars for a one-off run (e.g. a tool's path).
        if os.environ.get("SEALCHAT_LAB_EXTRA_VARS"):
            argv += ["-e", os.environ["SEALCHAT_LAB_EXTRA_VARS"]]
        with log.open("w") as out:
            proc = subprocess.run(
                ["ip", "netns", "exec", self.ns, *map(str, argv)],
                cwd=ANSIBLE_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        text = log.read_text()
        hosts = {
            h: {"ok": int(o), "changed": int(c), "unreachable": int(u), "failed": int(f)}
            for h, o, c, u, f in RECAP.findall(text)
        }
        return Recap(proc.returncode, hosts, log)

    # -- tear down ------------------------------------------------------------------------

    def _await_halts(self, deadline: float) -> None:
        """Wait for the containers to power off. A container whose own halt failed (systemd
        inside reports "Dependency failed for halt.target" and then waits forever, a known
        sporadic nspawn case) gets nspawn's second SIGTERM, its documented immediate
        termination, which still tears the container down in order. So does one that is
        still up at ``deadline``, which then gets 30 s more."""
        terminated: set[str] = set()

        def terminate(name: str) -> None:
            self._procs[name].send_signal(signal.SIGTERM)
            terminated.add(name)
            self.notes.append(f"{name}: powered off by a second SIGTERM")

        while time.monotonic() < deadline:
            running = [n for n, p in self._procs.items() if p.poll() is None]
            if not running:
                return
            for name in running:
                console = self.workdir / f"{name}.console.log"
                if name not in terminated and b"Dependency failed for halt.target" in _tail(
                    console
                ):
                    terminate(name)
            time.sleep(1.0)
        for name, proc in self._procs.items():
            if proc.poll() is None and name not in terminated:
                terminate(name)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def down(self) -> list[str]:
        """End what the lab started (by pid), remove its namespaces and files; report leftovers."""
        problems: list[str] = []
        # All at once: each container's orderly shutdown takes seconds, in parallel.
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # nspawn powers the container off on SIGTERM
        self._await_halts(time.monotonic() + 240)  # mon (MariaDB, Zabbix) is slow when busy
        for name, proc in list(self._procs.items()):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
                problems.append(f"{name} (pid {proc.pid}) needed SIGKILL")
            del self._procs[name]
        for ns in reversed(self._netns):
            out = subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
            if out.returncode != 0:
                problems.append(f"netns {ns}: {out.stderr.decode().strip()}")
        self._netns.clear()
        hosts = self.workdir / "hosts"
        mounted = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(hosts) + "/")
        ]
        if mounted:  # never delete through a mount that leads back into the host
            problems.append(f"still mounted, left in place: {mounted}")
        elif hosts.exists():
            shutil.rmtree(hosts, ignore_errors=True)
        return problems


def _tail(path: Path, size: int = 4096) -> bytes:
    """The last ``size`` bytes of ``path`` (nothing if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read()
    except FileNotFoundError:
        return b""
