"""``GET /<service>/metrics`` on every service, after a scenario whose numbers we know."""

from __future__ import annotations

import math
from typing import Any

from backend.common.metrics import allowed, parse_samples
from tests.log.scenario import User, new_id, run_scenario, stack, wait_for_events

Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(client: Any, service: str) -> Samples:
    r = await client.get(f"/{service}/metrics")
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_samples(await r.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for ls, v in samples[name] if all(ls.get(k) == x for k, x in labels.items()))


async def test_every_service_reports_what_happened(aiohttp_client, settings):
    operator = new_id("op")
    client = await stack(aiohttp_client, settings, operator)
    op = User(client, operator)
    await op.signup()
    await op.login()
    s = await run_scenario(client)
    await wait_for_events(op, 12, id=s.alice.id, limit="1000")

    auth = await scrape(client, "auth")
    assert value(auth, "sealchat_auth_successes_total") == 3  # the operator, alice, bob
    assert value(auth, "sealchat_auth_failures_total") == 1  # alice's wrong password
    assert value(auth, "sealchat_auth_throttled_total") == 0
    assert value(auth, "sealchat_auth_signups_total") == 3
    assert value(auth, "sealchat_events_total", category="signin", result="fail") == 1
    assert value(auth, "sealchat_event_log_drops_total") == 0

    chat = await scrape(client, "chat")
    assert value(chat, "sealchat_chat_messages_accepted_total") == 1
    assert value(chat, "sealchat_chat_sends_total", result="success") == 1
    assert value(chat, "sealchat_chat_sends_total", result="fail") == 1
    assert value(chat, "sealchat_chat_sockets") == 0  # the scenario closed its socket
    assert value(chat, "sealchat_chat_users_online") == 0
    assert value(chat, "sealchat_chat_messages_delivered_total") >= 1  # bob's socket at least
    assert value(chat, "sealchat_chat_deliver_latency_seconds_count") >= 1
    assert value(chat, "sealchat_events_total", category="connect") == 2  # alice and bob

    archiver = await scrape(client, "archiver")
    assert value(archiver, "sealchat_archiver_messages_archived_total") == 1
    assert value(archiver, "sealchat_archiver_commit_latency_seconds_count") == 1
    assert value(archiver, "sealchat_archiver_dead_letters_total") == 0
    depths = archiver["sealchat_queue_depth"]
    assert {labels["kind"] for labels, _ in depths} == {"work", "dead"}
    assert all(v == 0 for _, v in depths), depths  # everything was archived, nothing dead
    assert value(archiver, "sealchat_archiver_consumer_lag_seconds") >= 0

    log = await scrape(client, "log")
    assert value(log, "sealchat_log_events_stored_total") >= 12
    assert value(log, "sealchat_log_dead_letters_total") == 0
    assert not math.isnan(value(log, "sealchat_queue_depth", kind="work"))

    for samples in (auth, chat, archiver, log):
        assert value(samples, "process_resident_memory_bytes") > 10_000_000
        assert value(samples, "process_open_fds") > 0
        assert value(samples, "process_cpu_seconds_total") > 0


async def test_two_apps_in_one_process_count_separately(aiohttp_client, settings, tmp_path):
    first = await stack(aiohttp_client, settings, new_id("op"))
    other_settings = settings.model_copy(update={"data_dir": tmp_path / "other"})
    second = await stack(aiohttp_client, other_settings, new_id("op"))
    u = User(first, new_id())
    await u.signup()
    await u.login()
    assert value(await scrape(first, "auth"), "sealchat_auth_successes_total") == 1
    assert value(await scrape(second, "auth"), "sealchat_auth_successes_total") == 0


def test_metrics_are_served_to_loopback_and_listed_networks_only():
    loopback = ("127.0.0.0/8", "::1/128")
    assert allowed("127.0.0.1", loopback) and allowed("::1", loopback)
    assert not allowed("10.0.0.2", loopback)  # e.g. the load balancer forwarding /chat/*
    assert allowed("10.0.5.9", (*loopback, "10.0.5.0/24"))
    assert not allowed(None, loopback) and not allowed("not an address", loopback)
