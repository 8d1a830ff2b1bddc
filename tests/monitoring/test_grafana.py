"""The Grafana dashboards: Grafana's own types accept them, they ask Zabbix only for items
the template has, their layout is sound, and the provisioning files point at them.

The type check is ``monitoring/grafana/validate/check.mjs``: the TypeScript compiler checks
each dashboard as an object literal against ``@grafana/schema`` (pinned in its
package-lock.json; ``npm ci --prefix monitoring/grafana/validate`` installs it).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.zabbix import ROOT, template

GRAFANA = ROOT / "monitoring" / "grafana"
VALIDATE = GRAFANA / "validate"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def load_builder() -> Any:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", GRAFANA / "build_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (VALIDATE / "node_modules" / "@grafana" / "schema").is_dir():
        pytest.fail(
            "the dashboard check needs node and its packages: "
            "npm ci --prefix monitoring/grafana/validate",
            pytrace=False,
        )
    return subprocess.run(
        [node, str(VALIDATE / "check.mjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_committed_dashboards_are_what_the_builder_writes():
    builder = load_builder()
    assert [p.name for p in DASHBOARDS] == sorted(builder.DASHBOARDS)
    for path in DASHBOARDS:
        assert path.read_text(encoding="utf-8") == builder.render(path.name), (
            "run: .venv/bin/python monitoring/grafana/build_dashboards.py"
        )


def test_grafana_schema_accepts_the_dashboards_and_refuses_a_broken_one(tmp_path):
    ok = check(*DASHBOARDS)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(DASHBOARDS)} dashboard(s) match" in ok.stdout
    broken = json.loads((GRAFANA / "dashboards" / "sealchat-overview.json").read_text())
    stat = next(p for p in broken["panels"] if p["type"] == "stat")
    stat["options"]["colorMode"] = "rainbow"  # not a BigValueColorMode
    broken["panels"][-1]["gridPos"]["w"] = "wide"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    bad = check(path)
    assert bad.returncode == 1
    assert "rainbow" in bad.stderr and "not assignable to type 'number'" in bad.stderr


def item_names() -> set[str]:
    names = set()
    for t in template()["templates"]:
        names |= {i["name"] for i in t.get("items", [])}
        for rule in t.get("discovery_rules", []):
            names |= {p["name"] for p in rule["item_prototypes"]}
    return names


def matching(pattern: str, names: set[str]) -> set[str]:
    """Names the plugin's item filter selects: exact text, or a /regex/."""
    if pattern.startswith("/") and pattern.endswith("/"):
        regex = re.compile(pattern[1:-1])
        # Discovered items carry the macro's value; match the prototype with a sample one.
        return {
            n
            for n in names
            if regex.search(n.replace("{#FSNAME}", "/").replace("{#IFNAME}", "eth0"))
        }
    return {pattern} & names


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_asks_for_items_that_exist_and_the_layout_is_sound(path: Path):
    board = json.loads(path.read_text())
    names = item_names()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == "sealchat-zabbix"
            assert t["group"]["filter"] == "sealchat"
            found = matching(t["item"]["filter"], names)
            assert found, f"{panel['title']!r}: no template item matches {t['item']['filter']!r}"


def test_provisioning_points_at_the_dashboards_and_the_zabbix_plugin():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "zabbix.yaml").read_text())
    [zabbix] = ds["datasources"]
    assert zabbix["type"] == "alexanderzobnin-zabbix-datasource"
    assert zabbix["uid"] == "sealchat-zabbix"
    secret = zabbix["secureJsonData"]["apiToken"]
    assert secret.startswith("${") and secret.endswith("}"), "the token comes from the environment"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "sealchat.yaml").read_text()
    )
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert uids == {"sealchat-overview", "sealchat-node"}
