#!/usr/bin/env python3
"""Writes the Grafana dashboards under ``dashboards/`` from the panels listed below.

Every panel reads Zabbix through the ``alexanderzobnin-zabbix-datasource`` plugin (the
datasource that ``provisioning/datasources/zabbix.yaml`` creates with uid
``sealchat-zabbix``), by host group, host and item name: the item names are the ones in
``monitoring/zabbix/templates/sealchat.yaml``. ``tests/monitoring/test_grafana.py`` checks
that the committed JSON is what this script writes, that every item a panel asks for exists
in the template, and type-checks the JSON against Grafana's own ``@grafana/schema`` types.

    .venv/bin/python monitoring/grafana/build_dashboards.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("dashboards")
DATASOURCE = {"type": "alexanderzobnin-zabbix-datasource", "uid": "sealchat-zabbix"}
GROUP = "sealchat"
SCHEMA_VERSION = 39


def target(ref: str, item: str, *, host: str = "/.*/", functions: list[Any] | None = None) -> dict:
    """A Zabbix metrics query (queryType "0"): items named ``item`` on hosts matching ``host``."""
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "queryType": "0",
        "group": {"filter": GROUP},
        "host": {"filter": host},
        "application": {"filter": ""},
        "itemTag": {"filter": ""},
        "item": {"filter": item},
        "functions": functions or [],
        "options": {
            "showDisabledItems": False,
            "skipEmptyValues": False,
            "disableDataAlignment": False,
            "useZabbixValueMapping": False,
        },
    }


def sum_series() -> dict[str, Any]:
    return {
        "def": {"name": "sumSeries", "category": "Aggregate", "params": [], "defaultParams": []},
        "params": [],
        "text": "sumSeries()",
    }


def alias(name: str) -> dict[str, Any]:
    return {
        "def": {
            "name": "setAlias",
            "category": "Alias",
            "params": [{"name": "alias", "type": "string"}],
            "defaultParams": [],
        },
        "params": [name],
        "text": f"setAlias({name})",
    }


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def timeseries(
    pid: int,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict],
    *,
    unit: str = "short",
    description: str = "",
    stack: bool = False,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "color": {"mode": "palette-classic"},
                "thresholds": limits or thresholds((None, "green")),
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                    "thresholdsStyle": {"mode": "line" if limits else "off"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "showLegend": True,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    pid: int,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[dict],
    *,
    unit: str = "short",
    description: str = "",
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": pid,
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": limits or thresholds((None, "green")),
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
            "orientation": "auto",
            "textMode": "auto",
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
        },
    }


def dashboard(uid: str, title: str, description: str, panels: list[dict], **extra: Any) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["sealchat"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": extra.pop("variables", [])},
        "links": [],
        "panels": panels,
        **extra,
    }


def overview() -> dict[str, Any]:
    lag_limits = thresholds((None, "green"), (30, "red"))
    panels = [
        stat(
            1,
            "Nodes up",
            (0, 0, 4, 4),
            [target("A", "Zabbix agent ping", functions=[sum_series()])],
            description="Nodes whose Zabbix agent answers (each answers 1).",
        ),
        stat(
            2,
            "Connected sockets",
            (4, 0, 4, 4),
            [target("A", "sealchat chat: connected sockets", functions=[sum_series()])],
        ),
        stat(
            3,
            "Users online",
            (8, 0, 4, 4),
            [target("A", "sealchat chat: users online", functions=[sum_series()])],
        ),
        stat(
            4,
            "Messages per second",
            (12, 0, 4, 4),
            [target("A", "sealchat chat: messages accepted per second", functions=[sum_series()])],
            unit="short",
        ),
        stat(
            5,
            "Event records dropped",
            (16, 0, 4, 4),
            [target("A", "/sealchat .*: event records dropped/", functions=[sum_series()])],
            limits=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            6,
            "Dead letters",
            (20, 0, 4, 4),
            [target("A", "/sealchat .*: dead letters/", functions=[sum_series()])],
            limits=thresholds((None, "green"), (1, "orange")),
        ),
        timeseries(
            7,
            "Messages per second",
            (0, 4, 12, 8),
            [
                target(
                    "A",
                    "sealchat chat: messages accepted per second",
                    functions=[sum_series(), alias("accepted")],
                ),
                target(
                    "B",
                    "sealchat archiver: messages archived per second",
                    functions=[sum_series(), alias("archived")],
                ),
                target(
                    "C",
                    "sealchat chat: messages delivered per second",
                    functions=[sum_series(), alias("delivered")],
                ),
            ],
            unit="short",
            description="Accepted by chat nodes, archived, and pushed to sockets.",
        ),
        timeseries(
            8,
            "Send to deliver latency (p99)",
            (12, 4, 12, 8),
            [
                target("A", "sealchat chat: send to deliver latency p99"),
                target("B", "sealchat archiver: commit latency p99"),
            ],
            unit="s",
            limits=thresholds((None, "green"), (1, "red")),
        ),
        timeseries(
            9,
            "Queue lag",
            (0, 12, 12, 8),
            [target("A", "/sealchat (archiver|log): consumer lag/")],
            unit="s",
            limits=lag_limits,
            description="Age of what the consumers are working on.",
        ),
        timeseries(
            10,
            "Queue depth",
            (12, 12, 12, 8),
            [target("A", "/sealchat (archiver|log): (dead-letter )?queue depth/")],
        ),
        timeseries(
            11,
            "Connected sockets per node",
            (0, 20, 12, 8),
            [target("A", "sealchat chat: connected sockets")],
            stack=True,
        ),
        timeseries(
            12,
            "Auth failures",
            (12, 20, 12, 8),
            [
                target("A", "sealchat auth: failed logins per second"),
                target("B", "sealchat auth: throttled logins per second"),
            ],
            unit="short",
            description="Wrong passwords and refresh reuse; throttled attempts.",
        ),
    ]
    return dashboard(
        "sealchat-overview",
        "sealchat: cluster overview",
        "Every node of the cluster at a glance (docs/operations.md).",
        panels,
    )


def node() -> dict[str, Any]:
    host = "$host"
    variables = [
        {
            "name": "host",
            "label": "Node",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {
                "queryType": "host",
                "group": GROUP,
                "host": "/.*/",
                "application": "",
                "itemTag": "",
                "item": "",
            },
            "refresh": 1,
            "multi": False,
            "includeAll": False,
        }
    ]
    panels = [
        timeseries(
            1,
            "CPU utilization",
            (0, 0, 8, 8),
            [target("A", "CPU utilization", host=host)],
            unit="percent",
        ),
        timeseries(
            2,
            "Available memory",
            (8, 0, 8, 8),
            [target("A", "Available memory in %", host=host)],
            unit="percent",
        ),
        timeseries(
            3,
            "Disk space used",
            (16, 0, 8, 8),
            [target("A", "/: space utilization$/", host=host)],
            unit="percent",
            limits=thresholds((None, "green"), (80, "orange"), (90, "red")),
        ),
        timeseries(
            4,
            "Network",
            (0, 8, 12, 8),
            [target("A", "/Interface .*: bits (received|sent)/", host=host)],
            unit="bps",
        ),
        timeseries(
            5,
            "sealchatd CPU",
            (12, 8, 12, 8),
            [target("A", "/sealchat .*: process CPU/", host=host)],
            unit="percent",
        ),
        timeseries(
            6,
            "sealchatd memory",
            (0, 16, 12, 8),
            [target("A", "/sealchat .*: resident memory/", host=host)],
            unit="bytes",
        ),
        timeseries(
            7,
            "Open file descriptors",
            (12, 16, 12, 8),
            [target("A", "/sealchat .*: open file descriptors/", host=host)],
        ),
        timeseries(
            8,
            "Sockets and users here",
            (0, 24, 12, 8),
            [
                target("A", "sealchat chat: connected sockets", host=host),
                target("B", "sealchat chat: users online", host=host),
                target("C", "sealchat chat: sign-ins waiting", host=host),
            ],
        ),
        timeseries(
            9,
            "Queue lag here",
            (12, 24, 12, 8),
            [target("A", "/sealchat (archiver|log): consumer lag/", host=host)],
            unit="s",
        ),
    ]
    return dashboard(
        "sealchat-node",
        "sealchat: node",
        "One node: the machine and its services.",
        panels,
        variables=variables,
    )


DASHBOARDS = {"sealchat-overview.json": overview, "sealchat-node.json": node}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2) + "\n"


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name in DASHBOARDS:
        (OUT / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {OUT / name}")
