"""One template per sealchat service, reading its ``/<service>/metrics`` endpoint."""

from __future__ import annotations

from typing import Any

from sealchat_template.items import (
    ARCHIVER,
    AUTH,
    CHAT,
    DEFAULT_URL,
    LOG,
    URL_MACRO,
    consumer_items,
    item,
    metric,
    process_items,
    quantile,
    ref,
    template,
    trigger,
)


def auth_template() -> dict[str, Any]:
    t = AUTH
    fails = metric(t, "sealchat_auth_failures_total")
    items = [
        item(
            t,
            "sealchat auth: successful logins per second",
            metric(t, "sealchat_auth_successes_total"),
            units="logins/s",
            rate=True,
            component="auth",
        ),
        item(
            t,
            "sealchat auth: failed logins per second",
            fails,
            units="logins/s",
            rate=True,
            component="auth",
            description="Wrong id or password, and refresh-token reuse.",
            triggers=[
                trigger(
                    t,
                    "sealchat auth: many failed logins"
                    " (over {$SEALCHAT.AUTH.FAIL.RATE.MAX}/s for 5m)",
                    f"min({ref(t, fails)},5m)>{{$SEALCHAT.AUTH.FAIL.RATE.MAX}}",
                    "WARNING",
                    "Password guessing or a broken client; read the log (category signin).",
                )
            ],
        ),
        item(
            t,
            "sealchat auth: throttled logins per second",
            metric(t, "sealchat_auth_throttled_total"),
            units="logins/s",
            rate=True,
            component="auth",
        ),
        item(
            t,
            "sealchat auth: sign-ups per second",
            metric(t, "sealchat_auth_signups_total"),
            units="signups/s",
            rate=True,
            component="auth",
        ),
        *process_items(t, "auth"),
    ]
    macros = [
        (URL_MACRO[t], DEFAULT_URL[t], "The auth service's metrics, on loopback."),
        ("{$SEALCHAT.AUTH.FAIL.RATE.MAX}", "5", "Failed logins per second that warn."),
    ]
    return template(t, "The sealchat auth service, read from /auth/metrics.", items, macros)


def chat_template() -> dict[str, Any]:
    t = CHAT
    fails = metric(t, "sealchat_chat_sends_total", "result=fail")
    p99 = quantile(t, "sealchat_chat_deliver_latency_seconds")
    items = [
        item(
            t,
            "sealchat chat: connected sockets",
            metric(t, "sealchat_chat_sockets"),
            component="chat",
        ),
        item(
            t,
            "sealchat chat: users online",
            metric(t, "sealchat_chat_users_online"),
            component="chat",
        ),
        item(
            t,
            "sealchat chat: sign-ins waiting",
            metric(t, "sealchat_chat_signins_waiting"),
            component="chat",
            description="Sockets whose auth frame waits for a sign-in turn "
            "(chat.signin_concurrency at once). High for long while the stores are healthy: "
            "the node signs in too slowly for its reconnects.",
        ),
        item(
            t,
            "sealchat chat: messages accepted per second",
            metric(t, "sealchat_chat_messages_accepted_total"),
            units="msg/s",
            rate=True,
            component="messages",
        ),
        item(
            t,
            "sealchat chat: messages delivered per second",
            metric(t, "sealchat_chat_messages_delivered_total"),
            units="msg/s",
            rate=True,
            component="messages",
            description="Pushes of committed messages to sockets here.",
        ),
        item(
            t,
            "sealchat chat: failed sends per second",
            fails,
            units="msg/s",
            rate=True,
            component="messages",
            triggers=[
                trigger(
                    t,
                    "sealchat chat: send errors (over {$SEALCHAT.SEND.ERROR.RATE.MAX}/s for 5m)",
                    f"min({ref(t, fails)},5m)>{{$SEALCHAT.SEND.ERROR.RATE.MAX}}",
                    "AVERAGE",
                    "Clients see refused sends: read the log (category send, data.reason).",
                )
            ],
        ),
        item(
            t,
            "sealchat chat: send to deliver latency p99",
            p99,
            units="s",
            component="messages",
            triggers=[
                trigger(
                    t,
                    "sealchat chat: p99 delivery latency over {$SEALCHAT.LATENCY.P99.MAX}s for 5m",
                    f"min({ref(t, p99)},5m)>{{$SEALCHAT.LATENCY.P99.MAX}}",
                    "AVERAGE",
                    "The archiver or the doorbell (Redis) is slow; check queue lag.",
                )
            ],
        ),
        item(
            t,
            "sealchat chat: doorbell resyncs",
            metric(t, "sealchat_chat_doorbell_resyncs_total"),
            component="messages",
            triggers=[
                trigger(
                    t,
                    "sealchat chat: doorbell interrupted (clients resynced)",
                    f"change({ref(t, metric(t, 'sealchat_chat_doorbell_resyncs_total'))})>0",
                    "INFO",
                    "The Redis subscription dropped; clients caught up from history.",
                )
            ],
        ),
        *process_items(t, "chat"),
    ]
    macros = [
        (URL_MACRO[t], DEFAULT_URL[t], "The chat service's metrics, on loopback."),
        ("{$SEALCHAT.SEND.ERROR.RATE.MAX}", "1", "Failed sends per second that alert."),
        ("{$SEALCHAT.LATENCY.P99.MAX}", "1", "p99 send-to-deliver latency, seconds."),
    ]
    return template(t, "The sealchat chat service, read from /chat/metrics.", items, macros)


def archiver_template() -> dict[str, Any]:
    t = ARCHIVER
    items = [
        item(
            t,
            "sealchat archiver: messages archived per second",
            metric(t, "sealchat_archiver_messages_archived_total"),
            units="msg/s",
            rate=True,
            component="messages",
        ),
        item(
            t,
            "sealchat archiver: commit latency p99",
            quantile(t, "sealchat_archiver_commit_latency_seconds"),
            units="s",
            component="messages",
        ),
        item(
            t,
            "sealchat archiver: retries per second",
            metric(t, "sealchat_archiver_retries_total"),
            units="1/s",
            rate=True,
            component="messages",
        ),
        item(
            t,
            "sealchat archiver: doorbell ring failures",
            metric(t, "sealchat_archiver_ring_failures_total"),
            component="messages",
        ),
        *consumer_items(t, "archiver", "archiver", "{$SEALCHAT.QUEUE.LAG.MAX}", "HIGH"),
        *process_items(t, "archiver"),
    ]
    macros = [
        (URL_MACRO[t], DEFAULT_URL[t], "The archiver's metrics, on loopback."),
        ("{$SEALCHAT.QUEUE.LAG.MAX}", "30", "Seconds a message may wait to be archived."),
        ("{$SEALCHAT.QUEUE.DEPTH.MAX}", "10000", "Ready messages that mean falling behind."),
    ]
    return template(t, "The sealchat archiver, read from /archiver/metrics.", items, macros)


def log_template() -> dict[str, Any]:
    t = LOG
    items = [
        item(
            t,
            "sealchat log: events stored per second",
            metric(t, "sealchat_log_events_stored_total"),
            units="events/s",
            rate=True,
            component="events",
        ),
        item(
            t,
            "sealchat log: store retries per second",
            metric(t, "sealchat_log_store_retries_total"),
            units="1/s",
            rate=True,
            component="events",
        ),
        *consumer_items(t, "log", "log", "{$SEALCHAT.LOG.LAG.MAX}", "WARNING"),
        *process_items(t, "log"),
    ]
    macros = [
        (URL_MACRO[t], DEFAULT_URL[t], "The log service's metrics, on loopback."),
        ("{$SEALCHAT.LOG.LAG.MAX}", "300", "Seconds an event may wait to be stored."),
        ("{$SEALCHAT.QUEUE.DEPTH.MAX}", "100000", "Ready records that mean falling behind."),
    ]
    return template(t, "The sealchat log service, read from /log/metrics.", items, macros)
