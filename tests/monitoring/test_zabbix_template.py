"""The Zabbix template is well-formed 6.0 export YAML, consistent with itself, and exactly what
``monitoring/zabbix/build_template.py`` writes.

Without a Zabbix server here, this checks what the 6.0 importer checks first: the export
version, 32-hex UUIDv4s unique across the file, the enumerations (item type, value type,
preprocessing, priority), unique keys per template, and trigger expressions in the 6.0
syntax whose every ``/template/key`` names an item of that template and whose user macros
are defined. The agent test (``test_zabbix_agent.py``) proves the keys themselves work.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from typing import Any

from tests.monitoring.zabbix import TEMPLATE, ZABBIX, template

ITEM_TYPES = {
    "ZABBIX_PASSIVE", "TRAP", "SIMPLE", "INTERNAL", "ZABBIX_ACTIVE", "EXTERNAL", "ODBC", "IPMI",
    "SSH", "TELNET", "CALCULATED", "JMX", "SNMP_TRAP", "DEPENDENT", "HTTP_AGENT", "SNMP_AGENT",
    "ITEM_TYPE_SCRIPT",
}  # fmt: skip
VALUE_TYPES = {"FLOAT", "CHAR", "LOG", "UNSIGNED", "TEXT"}
PRIORITIES = {"NOT_CLASSIFIED", "INFO", "WARNING", "AVERAGE", "HIGH", "DISASTER"}
PREPROCESSING = {"MULTIPLIER", "CHANGE_PER_SECOND", "SIMPLE_CHANGE", "DISCARD_UNCHANGED_HEARTBEAT"}
FUNCTIONS = {"last", "min", "max", "avg", "nodata", "change", "count", "sum"}
# Zabbix 6.0 accepts only UUIDv4: version nibble 4, variant 10xx.
UUID = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")
# A 6.0 function call on an item: func(/host/key[,params]) where key may hold [...].
CALL = re.compile(r"(\w+)\(/([^/]+)/((?:[^,\[\)]|\[[^\]]*\])+)((?:,[^)]*)?)\)")
MACRO = re.compile(r"\{\$[A-Z0-9_.]+\}")


def load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("build_template", ZABBIX / "build_template.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_yaml_is_what_the_builder_writes():
    assert TEMPLATE.read_text(encoding="utf-8") == load_builder().render(), (
        "run: .venv/bin/python monitoring/zabbix/build_template.py"
    )


def all_triggers(t: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
    """(trigger, the key of the item it hangs under or None) for items and prototypes."""
    out = [(trig, item["key"]) for item in t.get("items", []) for trig in item.get("triggers", [])]
    for rule in t.get("discovery_rules", []):
        for proto in rule["item_prototypes"]:
            out += [(trig, proto["key"]) for trig in proto.get("trigger_prototypes", [])]
    return out


def test_the_template_is_well_formed_zabbix_6_0():
    export = template()
    assert export["version"] == "6.0"
    groups = {g["name"] for g in export["groups"]}
    uuids: list[str] = [g["uuid"] for g in export["groups"]]
    keys_of: dict[str, set[str]] = {}
    macros_of: dict[str, set[str]] = {}
    for t in export["templates"]:
        assert t["template"] == t["name"]
        assert {g["name"] for g in t["groups"]} <= groups
        uuids.append(t["uuid"])
        items = list(t.get("items", []))
        for rule in t.get("discovery_rules", []):
            uuids.append(rule["uuid"])
            items += rule["item_prototypes"]
        keys = [i["key"] for i in items]
        assert len(keys) == len(set(keys)), Counter(keys).most_common(3)
        keys_of[t["template"]] = set(keys)
        macros_of[t["template"]] = {m["macro"] for m in t.get("macros", [])}
        for i in items:
            uuids.append(i["uuid"])
            assert i.get("type", "ZABBIX_PASSIVE") in ITEM_TYPES
            assert i.get("value_type", "UNSIGNED") in VALUE_TYPES
            assert re.fullmatch(r"\d+[smhdw]", i.get("delay", "1m")) and re.fullmatch(
                r"\d+[dhw]", i["history"]
            )
            for step in i.get("preprocessing", []):
                assert step["type"] in PREPROCESSING and isinstance(step["parameters"], list)
            for macro in MACRO.findall(i["key"]):
                assert macro in macros_of[t["template"]], (i["key"], macro)
        for trig, owner in all_triggers(t):
            uuids.append(trig["uuid"])
            check_trigger(trig, keys_of, macros_of, only=(t["template"], owner))
    for trig in export.get("triggers", []):
        uuids.append(trig["uuid"])
        check_trigger(trig, keys_of, macros_of, only=None)
    assert all(UUID.fullmatch(u) for u in uuids)
    assert len(uuids) == len(set(uuids)), "UUIDs must be unique in the export"


def check_trigger(
    trig: dict[str, Any],
    keys_of: dict[str, set[str]],
    macros_of: dict[str, set[str]],
    only: tuple[str, str | None] | None,
) -> None:
    assert trig["priority"] in PRIORITIES, trig
    assert trig["name"] and trig["description"]
    expression = trig["expression"]
    calls = CALL.findall(expression)
    assert calls, expression
    hosts = set()
    for func, host, key, _params in calls:
        assert func in FUNCTIONS, (func, expression)
        assert key in keys_of[host], (key, host)
        hosts.add(host)
        if only is not None:
            assert (host, key) == only, "an item's trigger may use that item only"
    for host in hosts:
        for macro in MACRO.findall(expression) + MACRO.findall(trig["name"]):
            assert macro in macros_of[host], (macro, expression)
    # Nothing but calls, numbers, macros and operators is left once the calls are removed.
    rest = MACRO.sub("0", CALL.sub("0", expression))
    assert re.fullmatch(r"[0-9.\s<>=+\-*/()andor]+", rest), rest
    for dep in trig.get("dependencies", []):
        assert dep["name"] and CALL.search(dep["expression"])


def test_every_trigger_and_severity_is_documented():
    ops = (ZABBIX.parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    export = template()
    names = [trig["name"] for t in export["templates"] for trig, _ in all_triggers(t)]
    names += [trig["name"] for trig in export["triggers"]]
    for name in names:
        stem = MACRO.sub("N", name)
        assert stem in ops, f"docs/operations.md does not explain the trigger {stem!r}"


def test_the_template_is_written_as_zabbix_exports_it():
    """Zabbix 6.0's import compare (what the Ansible role uses to decide "changed") compares
    with the server's own export: defaults left out, macros by name, and a trigger on one item
    under that item. Anything else reads as a change on every converge."""
    export = template()
    for t in export["templates"]:
        macros = [m["macro"] for m in t.get("macros", [])]
        assert macros == sorted(macros), t["template"]
        items = list(t.get("items", []))
        items += [p for rule in t.get("discovery_rules", []) for p in rule["item_prototypes"]]
        assert all(i.get("delay") != "1m" for i in items), t["template"]
    for trig in export.get("triggers", []):
        refs = set(re.findall(r"/([^/]+)/((?:[^,\[\)]|\[[^\]]*\])+)", trig["expression"]))
        assert len(refs) > 1, f"{trig['name']} reads one item: it belongs under that item"
