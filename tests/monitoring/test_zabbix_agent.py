"""A real zabbix_agentd with the project's UserParameter file answers every application key
of the template with the number the service's metrics endpoint shows, and the host keys of
the template are ones the agent supports.

``zabbix_get`` is not packaged by Debian; ``zabbix_utils.Getter`` (Zabbix's own Python
library) speaks the same passive-check protocol to the agent's port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from zabbix_utils import Getter

from backend.common.metrics import parse_samples
from backend.common.settings import load_settings
from tests.log.scenario import User, new_id, run_scenario, stack, wait_for_events
from tests.monitoring.zabbix import running_agent, template

# Process figures move between two reads; everything else must match exactly.
TOLERANCE = {
    "process_resident_memory_bytes": 0.10,
    "process_cpu_seconds_total": 0.5,
    "process_open_fds": 5,
}
_KEY = re.compile(r"^(sealchat\.\w+(?:\.\w+)?)\[(.*)\]$")


def certificate(path: Path, days: int) -> None:
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealchat.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, None)  # Ed25519 takes no separate hash
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def application_keys() -> list[str]:
    keys = []
    for t in template()["templates"]:
        for item in t.get("items", []):
            if item["key"].startswith("sealchat."):
                keys.append(item["key"])
    return keys


def host_keys() -> list[str]:
    node = next(t for t in template()["templates"] if t["template"].startswith("sealchat node"))
    rules = [rule["key"] for rule in node.get("discovery_rules", [])]
    return [item["key"] for item in node["items"]] + rules


def expected_metric(text: str, name: str, filters: list[str]) -> float:
    wanted = dict(f.split("=", 1) for f in filters if f)
    samples = parse_samples(text)
    assert name in samples, f"{name} is not on the endpoint"
    return sum(
        v for labels, v in samples[name] if all(labels.get(k) == x for k, x in wanted.items())
    )


def bucket_bounds(text: str, histogram: str, q: float) -> tuple[float, float]:
    """The bucket the q-quantile falls in, read directly from the cumulative buckets."""
    buckets = sorted(
        (float(labels["le"]), v) for labels, v in parse_samples(text)[histogram + "_bucket"]
    )
    total = buckets[-1][1]
    lower = 0.0
    for bound, count in buckets:
        if count >= q * total:
            return lower, bound
        lower = bound
    return lower, math.inf


async def test_the_agent_answers_every_template_key_like_the_endpoint(aiohttp_client, tmp_path):
    settings = load_settings(
        None, {"data_dir": str(tmp_path / "data"), "log": {"format": "json"}}, environ={}
    )
    operator = new_id("op")
    client = await stack(aiohttp_client, settings, operator)
    op = User(client, operator)
    await op.signup()
    await op.login()
    scenario = await run_scenario(client)
    await wait_for_events(op, 12, id=scenario.alice.id, limit="1000")
    urls = {s: str(client.make_url(f"/{s}/metrics")) for s in ("auth", "chat", "archiver", "log")}
    macros = {f"{{$SEALCHAT.{s.upper()}.URL}}": url for s, url in urls.items()}
    cert = tmp_path / "server.crt"
    certificate(cert, days=10)
    macros["{$SEALCHAT.CERT.PATH}"] = str(cert)

    def resolve(key: str) -> str:
        for macro, value in macros.items():
            key = key.replace(macro, value)
        return key

    state = tmp_path / "state"
    with running_agent(tmp_path, env={"SEALCHAT_METRIC_STATE": str(state)}) as port:
        getter = Getter(host="127.0.0.1", port=port, timeout=20)

        async def ask(key: str) -> str:
            # Blocking protocol client in a thread: the endpoint it reads runs on this loop.
            response = await asyncio.to_thread(getter.get, key)
            assert response.error is None, (key, response.error)
            return str(response.value)

        async def endpoint(url: str) -> str:
            r = await client.get(urlsplit(url).path)
            assert r.status == 200
            return await r.text()

        keys = application_keys()
        assert len(keys) >= 30
        checked: list[str] = []
        for template_key in keys:
            key = resolve(template_key)
            kind, params = _KEY.fullmatch(key).groups()  # type: ignore[union-attr]
            args = params.split(",")
            got = await ask(key)
            assert not got.startswith("ZBX_NOTSUPPORTED"), (template_key, got)
            value = float(got)
            if kind == "sealchat.cert.days":
                assert 9.9 < value < 10.01, got
            elif kind == "sealchat.quantile":
                text = await endpoint(args[0])
                lower, upper = bucket_bounds(text, args[1], float(args[2]))
                count = parse_samples(text)[args[1] + "_count"][0][1]
                if count == 0:
                    assert value == 0
                else:
                    assert lower <= value <= upper, (template_key, value, lower, upper)
                # The window is "since the last call": nothing new, so 0 now.
                assert float(await ask(key)) == 0, template_key
            else:
                expected = expected_metric(await endpoint(args[0]), args[1], args[2:])
                slack = TOLERANCE.get(args[1], 0) * (expected if args[1].endswith("bytes") else 1)
                assert abs(value - expected) <= slack, (template_key, value, expected)
            checked.append(template_key)
        assert checked == keys

        # Numbers that the scenario made, read through the agent.
        accepted = resolve(
            "sealchat.metric[{$SEALCHAT.CHAT.URL},sealchat_chat_messages_accepted_total]"
        )
        assert float(await ask(accepted)) == 1
        archived = resolve(
            "sealchat.metric[{$SEALCHAT.ARCHIVER.URL},sealchat_archiver_messages_archived_total]"
        )
        assert float(await ask(archived)) == 1
        failures = resolve("sealchat.metric[{$SEALCHAT.AUTH.URL},sealchat_auth_failures_total]")
        assert float(await ask(failures)) == 1

        # The helper reads loopback only, and says why it refuses.
        refused = await ask("sealchat.metric[http://sealchat.invalid/chat/metrics,x]")
        assert refused.startswith("ZBX_NOTSUPPORTED") and "loopback" in refused
        unknown = await ask(f"sealchat.metric[{urls['chat']},sealchat_no_such_metric]")
        assert unknown.startswith("ZBX_NOTSUPPORTED") and "no metric" in unknown

        for key in host_keys():
            response = await asyncio.to_thread(getter.get, key)
            assert response.error is None and response.value not in (None, ""), (key, response)
