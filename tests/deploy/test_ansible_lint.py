"""Every playbook parses against both inventories, and the tree passes ansible-lint --profile
production: the gate the issue sets for the roles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.conftest import ANSIBLE_DIR, INVENTORIES, PLAYBOOKS, ansible_tool, run_tool

SECRET_DEFINITION = re.compile(r"^\s*(vault_\w+):", re.MULTILINE)


def test_there_are_playbooks() -> None:
    names = {p.name for p in PLAYBOOKS}
    assert {"site.yml", "rolling_restart_chat.yml", "backup.yml"} <= names


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_syntax_check(playbook: Path, inventory: str) -> None:
    tool = ansible_tool("ansible-playbook")
    out = run_tool([tool, "--syntax-check", "-i", inventory, playbook], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ansible_lint_production_profile() -> None:
    tool = ansible_tool("ansible-lint")
    out = run_tool([tool, "--profile", "production", "--offline", "--nocolor"], timeout=900)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in out.stdout + out.stderr


def test_production_secrets_are_vault_encrypted() -> None:
    """No plaintext secret in the production inventory: only the vault file defines vault_*."""
    root = ANSIBLE_DIR / "inventories/production"
    vault = root / "group_vars/all/vault.yml"
    assert vault.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    for path in root.rglob("*.yml"):
        if path != vault:
            assert not SECRET_DEFINITION.search(path.read_text()), f"{path} defines a secret"


def test_lab_secrets_are_generated_not_written_down() -> None:
    """Each lab secret is a password lookup (random, kept out of git in .secrets/lab)."""
    text = (ANSIBLE_DIR / "inventories/lab/group_vars/all/secrets.yml").read_text()
    names = SECRET_DEFINITION.findall(text)
    assert len(names) >= 8
    for block in re.split(r"\n(?=vault_)", text)[1:]:
        name = block.split(":", 1)[0]
        if name != "vault_sealchat_signing_key_pem":
            assert "lookup('ansible.builtin.password'" in block, name
