"""vagrant/machines.yml and the lab inventory describe the same lab, and the Vagrantfile that
reads machines.yml is valid (Debian's ``vagrant validate``)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

import pytest

from tests.deploy.conftest import ANSIBLE_DIR, ROOT, ansible_tool, load_yaml, run_tool

PUBLIC = ipaddress.ip_network("192.168.75.0/24")
PRIVATE = ipaddress.ip_network("192.168.123.0/24")
EXPECTED_HOSTS = {"lb", "auth", "chat1", "chat2", "log", "data", "mon"}


@pytest.fixture(scope="module")
def machines() -> dict[str, dict[str, Any]]:
    data = load_yaml(ROOT / "vagrant/machines.yml")
    assert isinstance(data, dict)
    return {m["name"]: m for m in data["machines"]}


@pytest.fixture(scope="module")
def inventory() -> dict[str, Any]:
    tool = ansible_tool("ansible-inventory")
    out = run_tool([tool, "-i", "inventories/lab", "--list"], timeout=120)
    assert out.returncode == 0, out.stderr
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def _groups_of(inventory: dict[str, Any], host: str) -> set[str]:
    """Every group the host belongs to, directly or through children."""
    direct = {g for g, v in inventory.items() if host in v.get("hosts", [])}
    result = set(direct)
    changed = True
    while changed:
        changed = False
        for group, value in inventory.items():
            if group not in result and result & set(value.get("children", [])):
                result.add(group)
                changed = True
    return result - {"all", "ungrouped"}


def test_same_hosts(machines: dict[str, Any], inventory: dict[str, Any]) -> None:
    assert set(machines) == EXPECTED_HOSTS
    assert set(inventory["_meta"]["hostvars"]) == EXPECTED_HOSTS


def test_same_addresses(machines: dict[str, Any], inventory: dict[str, Any]) -> None:
    hostvars = inventory["_meta"]["hostvars"]
    for name, m in machines.items():
        hv = hostvars[name]
        assert hv["cluster_private_ip"] == m["private_ip"] == hv["ansible_host"], name
        assert ipaddress.ip_address(m["private_ip"]) in PRIVATE
        assert hv.get("cluster_public_ip") == m.get("public_ip"), name
        if "public_ip" in m:
            assert ipaddress.ip_address(m["public_ip"]) in PUBLIC


def test_only_lb_and_mon_are_public(machines: dict[str, Any]) -> None:
    assert {n for n, m in machines.items() if "public_ip" in m} == {"lb", "mon"}
    assert machines["lb"]["public_ip"] == "192.168.75.10"


def test_addresses_are_unique(machines: dict[str, Any]) -> None:
    ips = [m["private_ip"] for m in machines.values()]
    ips += [m["public_ip"] for m in machines.values() if "public_ip" in m]
    assert len(ips) == len(set(ips))


def test_same_groups(machines: dict[str, Any], inventory: dict[str, Any]) -> None:
    for name, m in machines.items():
        assert _groups_of(inventory, name) == set(m["groups"]), name


def test_vagrant_validate(vagrant: str) -> None:
    # No VM provider (VirtualBox, libvirt) exists where the tests run, and `validate` refuses
    # to start without one; --ignore-provider still checks everything but the provider blocks.
    out = subprocess.run(
        [vagrant, "validate", "--ignore-provider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "validated successfully" in out.stdout


def test_vagrantfile_uses_site_and_lab_inventory() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    assert 'ansible.playbook = "ansible/playbooks/site.yml"' in text
    assert 'ansible.inventory_path = "ansible/inventories/lab"' in text
    assert (ANSIBLE_DIR / "playbooks/site.yml").exists()
