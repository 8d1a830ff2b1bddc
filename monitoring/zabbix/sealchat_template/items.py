"""Building blocks of the sealchat Zabbix template: names, UUIDs, items, triggers, and the
items every sealchat service template shares (process figures, queue consumers)."""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = uuid.UUID("6d1b8f0e-3c1a-4f57-9b8e-5ea1c4a7a001")
GROUP = "Templates/Applications"

NODE = "sealchat node by Zabbix agent"
AUTH = "sealchat auth by Zabbix agent"
CHAT = "sealchat chat by Zabbix agent"
ARCHIVER = "sealchat archiver by Zabbix agent"
LOG = "sealchat log by Zabbix agent"
CERT = "sealchat TLS certificate by Zabbix agent"

URL_MACRO = {
    AUTH: "{$SEALCHAT.AUTH.URL}",
    CHAT: "{$SEALCHAT.CHAT.URL}",
    ARCHIVER: "{$SEALCHAT.ARCHIVER.URL}",
    LOG: "{$SEALCHAT.LOG.URL}",
}
DEFAULT_URL = {
    AUTH: "http://127.0.0.1:8081/auth/metrics",
    CHAT: "http://127.0.0.1:8082/chat/metrics",
    ARCHIVER: "http://127.0.0.1:8084/archiver/metrics",
    LOG: "http://127.0.0.1:8083/log/metrics",
}


DEFAULT_DELAY = "1m"  # an item's update interval when the export does not say


def uid(*parts: str) -> str:
    """A stable UUID for a named thing, shaped as a UUIDv4 (the Zabbix 6.0 importer rejects any
    other version): uuid5's bytes with the version and variant bits of version 4."""
    return str(uuid.UUID(bytes=uuid.uuid5(NAMESPACE, "/".join(parts)).bytes, version=4).hex)


def per_second() -> list[dict[str, Any]]:
    return [{"type": "CHANGE_PER_SECOND", "parameters": [""]}]


def item(
    template: str,
    name: str,
    key: str,
    *,
    units: str = "",
    value_type: str = "FLOAT",
    rate: bool = False,
    component: str,
    description: str = "",
    delay: str = "1m",
    triggers: list[dict[str, Any]] | None = None,
    preprocessing: list[dict[str, Any]] | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": uid(template, key), "name": name}
    if type is not None:
        out["type"] = type
    out["key"] = key
    if delay != DEFAULT_DELAY:  # Zabbix exports omit defaults; its import compare does too
        out["delay"] = delay
    out["history"] = "7d"
    if value_type != "UNSIGNED":
        out["value_type"] = value_type
    if units:
        out["units"] = units
    if description:
        out["description"] = description
    steps = (per_second() if rate else []) + (preprocessing or [])
    if steps:
        out["preprocessing"] = steps
    out["tags"] = [{"tag": "component", "value": component}]
    if triggers:
        out["triggers"] = triggers
    return out


def trigger(
    template: str, name: str, expression: str, priority: str, description: str, **extra: Any
) -> dict[str, Any]:
    return {
        "uuid": uid(template, "trigger", name),
        "expression": expression,
        "name": name,
        "priority": priority,
        "description": description,
        **extra,
        "tags": [{"tag": "scope", "value": "availability" if "down" in name else "performance"}],
    }


def metric(template: str, sample: str, *labels: str) -> str:
    return f"sealchat.metric[{URL_MACRO[template]},{','.join((sample, *labels))}]"


def quantile(template: str, histogram: str, q: str = "0.99") -> str:
    return f"sealchat.quantile[{URL_MACRO[template]},{histogram},{q}]"


def ref(template: str, key: str) -> str:
    return f"/{template}/{key}"


def process_items(t: str, service: str) -> list[dict[str, Any]]:
    return [
        item(
            t,
            f"sealchat {service}: process CPU",
            metric(t, "process_cpu_seconds_total"),
            units="%",
            rate=True,
            component="cpu",
            preprocessing=[{"type": "MULTIPLIER", "parameters": ["100"]}],
            description="Share of one core the sealchatd process uses.",
        ),
        item(
            t,
            f"sealchat {service}: resident memory",
            metric(t, "process_resident_memory_bytes"),
            units="B",
            component="memory",
        ),
        item(
            t,
            f"sealchat {service}: open file descriptors",
            metric(t, "process_open_fds"),
            component="process",
        ),
        item(
            t,
            f"sealchat {service}: file descriptor limit",
            metric(t, "process_max_fds"),
            component="process",
            delay="10m",
        ),
        item(
            t,
            f"sealchat {service}: event records dropped",
            metric(t, "sealchat_event_log_drops_total"),
            component="events",
            description="Records lost because the event buffer was full.",
            triggers=[
                trigger(
                    t,
                    f"sealchat {service}: event records are being dropped",
                    f"change({ref(t, metric(t, 'sealchat_event_log_drops_total'))})>0",
                    "WARNING",
                    "The log path (RabbitMQ) is down or too slow; see docs/operations.md.",
                )
            ],
        ),
    ]


def process_triggers(t: str, service: str) -> list[dict[str, Any]]:
    fds, limit = metric(t, "process_open_fds"), metric(t, "process_max_fds")
    return [
        trigger(
            t,
            f"sealchat {service}: metrics endpoint down (no data for 5m)",
            f"nodata({ref(t, fds)},5m)=1",
            "HIGH",
            "The service is not running or not answering on its metrics URL.",
        ),
        trigger(
            t,
            f"sealchat {service}: open file descriptors over 80% of the limit",
            f"last({ref(t, fds)})>0.8*last({ref(t, limit)})",
            "AVERAGE",
            "Each WebSocket holds a descriptor; raise LimitNOFILE or add a node.",
        ),
    ]


def consumer_items(
    t: str, service: str, prefix: str, lag_macro: str, lag_priority: str
) -> list[dict[str, Any]]:
    lag = metric(t, f"sealchat_{prefix}_consumer_lag_seconds")
    depth = metric(t, "sealchat_queue_depth", "kind=work")
    dead = metric(t, f"sealchat_{prefix}_dead_letters_total")
    return [
        item(
            t,
            f"sealchat {service}: consumer lag",
            lag,
            units="s",
            component="queue",
            triggers=[
                trigger(
                    t,
                    f"sealchat {service}: queue lag over {lag_macro}s for 2m",
                    f"min({ref(t, lag)},2m)>{lag_macro}",
                    lag_priority,
                    "The consumer is behind or stuck; see docs/operations.md.",
                )
            ],
        ),
        item(
            t,
            f"sealchat {service}: queue depth",
            depth,
            component="queue",
            triggers=[
                trigger(
                    t,
                    f"sealchat {service}: queue keeps growing"
                    " (over {$SEALCHAT.QUEUE.DEPTH.MAX} for 10m)",
                    f"min({ref(t, depth)},10m)>{{$SEALCHAT.QUEUE.DEPTH.MAX}}",
                    "AVERAGE",
                    "Consumers are not keeping up, or none is attached.",
                )
            ],
        ),
        item(
            t,
            f"sealchat {service}: dead-letter queue depth",
            metric(t, "sealchat_queue_depth", "kind=dead"),
            component="queue",
        ),
        item(
            t,
            f"sealchat {service}: dead letters",
            dead,
            component="queue",
            triggers=[
                trigger(
                    t,
                    f"sealchat {service}: new dead letters",
                    f"change({ref(t, dead)})>0",
                    "WARNING",
                    "Read the dead-letter queue; the reason is in the service's log lines.",
                )
            ],
        ),
    ]


def template(
    name: str,
    description: str,
    items: list[dict[str, Any]],
    macros: list[tuple[str, str, str]],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "uuid": uid(name),
        "template": name,
        "name": name,
        "description": description + " Items and triggers: docs/operations.md.",
        "groups": [{"name": GROUP}],
        "items": items,
        **extra,
        "tags": [{"tag": "class", "value": "software"}, {"tag": "target", "value": "sealchat"}],
        # Sorted by name, as Zabbix exports them: its import compare sees order as a change.
        "macros": [{"macro": m, "value": v, "description": d} for m, v, d in sorted(macros)],
    }
