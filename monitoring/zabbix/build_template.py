#!/usr/bin/env python3
"""Writes ``templates/sealchat.yaml`` (Zabbix 6.0 export format) from the tables below.

The template is generated so that every item, trigger and macro is named one way, UUIDs
are stable (uuid5 of the thing's name with the version bits of a UUIDv4, the only shape the
Zabbix 6.0 importer accepts; stable so a re-import updates rather than duplicates), and the
application items are exactly the metrics the services expose. ``tests/monitoring``
checks that the committed YAML is what this script writes. Run it after editing:

    .venv/bin/python monitoring/zabbix/build_template.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sealchat_template package

from sealchat_template.host import cert_template, node_template
from sealchat_template.items import (
    ARCHIVER,
    AUTH,
    CHAT,
    GROUP,
    LOG,
    process_triggers,
    uid,
)
from sealchat_template.services import (
    archiver_template,
    auth_template,
    chat_template,
    log_template,
)

OUT = Path(__file__).with_name("templates") / "sealchat.yaml"


# An item reference in a 6.0 trigger expression: /template/key, the key possibly with [...].
ITEM_REF = re.compile(r"/([^/]+)/((?:[^,\[\)]|\[[^\]]*\])+)")


def place_triggers(
    templates: list[dict[str, Any]], triggers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Put each trigger where a Zabbix export puts it: under its item when the expression
    reads one item only, at the top level otherwise. Zabbix's import compare reports a
    trigger found elsewhere as removed and added, so the import would never be a no-op."""
    items = {(t["template"], i["key"]): i for t in templates for i in t.get("items", [])}
    top = []
    for trig in triggers:
        refs = set(ITEM_REF.findall(trig["expression"]))
        if len(refs) == 1 and (target := items.get(refs.pop())) is not None:
            target.setdefault("triggers", []).append(trig)
        else:
            top.append(trig)
    return top


def export() -> dict[str, Any]:
    templates = [
        node_template(),
        auth_template(),
        chat_template(),
        archiver_template(),
        log_template(),
        cert_template(),
    ]
    service_triggers = [
        trig
        for t, service in ((AUTH, "auth"), (CHAT, "chat"), (ARCHIVER, "archiver"), (LOG, "log"))
        for trig in process_triggers(t, service)
    ]
    top_triggers = place_triggers(templates, service_triggers)
    return {
        "zabbix_export": {
            "version": "6.0",
            "date": "2026-11-22T00:00:00Z",
            "groups": [{"uuid": uid("group", GROUP), "name": GROUP}],
            "templates": templates,
            "triggers": top_triggers,
        }
    }


def render() -> str:
    return yaml.safe_dump(export(), sort_keys=False, allow_unicode=True, width=1000)


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
