"""The deployment's static checks run the Ansible tools from their own venv, ``.venv-ansible``.

ansible-lint pins many packages of its own, so it lives apart from the application's venv;
``make ansible-venv`` creates it from ``ansible/requirements-dev.txt``. A missing venv is a
failure that says how to make it, never a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
ANSIBLE_VENV = Path(os.environ.get("SEALCHAT_ANSIBLE_VENV", ROOT / ".venv-ansible"))
PLAYBOOKS = sorted((ANSIBLE_DIR / "playbooks").glob("*.yml"))
INVENTORIES = ["inventories/lab", "inventories/production"]


def ansible_tool(name: str) -> Path:
    path = ANSIBLE_VENV / "bin" / name
    if not path.exists():
        pytest.fail(
            f"{path} not found: run `make ansible-venv` (a venv from ansible/requirements-dev.txt)",
            pytrace=False,
        )
    return path


def run_tool(argv: list[str | Path], *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run an Ansible tool in ``ansible/`` (so ansible.cfg applies) with its venv on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{ANSIBLE_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ANSIBLE_DIR / "ansible.cfg")
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    return subprocess.run(
        [str(a) for a in argv],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_yaml(path: Path) -> object:
    """Parse YAML with the Ansible venv's PyYAML (the app venv does not ship one)."""
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    out = run_tool([ansible_tool("python"), "-c", code, path], timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def vagrant() -> str:
    exe = shutil.which("vagrant")
    if exe is None:
        pytest.fail("vagrant not found: apt-get install -y vagrant", pytrace=False)
    return exe
