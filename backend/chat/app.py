"""The chat service: friends, rooms, the WebSocket gateway and history under ``/chat/``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Histogram

from backend import __version__
from backend.chat import views
from backend.chat.fanout import TO_DEVICE_CHANNEL, Fanout
from backend.chat.gateway import views as gateway_views
from backend.chat.gateway.registry import Registry
from backend.chat.history import History, commit_channels
from backend.chat.member_cache import MEMBERSHIP_CHANNEL
from backend.chat.messaging import pending_on_connect
from backend.chat.pipeline import Intake
from backend.chat.presence import ClusterPresence
from backend.chat.room_purge import purge_room
from backend.chat.social import SocialService
from backend.chat.typing_throttle import TypingThrottle
from backend.common.auth_guard import SESSION_ENDED_CHANNEL
from backend.common.events import EventPublisher
from backend.common.metrics import (
    ServiceMetrics,
    counter,
    events_readings,
    gauge,
    latency_histogram,
    metrics_view,
)
from backend.common.resources import Stores
from backend.common.settings import Settings

log = logging.getLogger("sealchat.chat")


@dataclass(slots=True)
class ChatRuntime:
    """Everything the chat views and the gateway share within one process."""

    settings: Settings
    stores: Stores
    events: EventPublisher
    social: SocialService
    """Friends, blocks, rooms and membership (``backend/chat/social.py``)."""
    intake: Intake
    """Members' messages into the durable queue (``backend/chat/pipeline.py``)."""
    history: History
    """Paged reads of archived messages (``backend/chat/history.py``)."""
    gateway: Registry = field(default_factory=Registry)
    """Authenticated WebSocket connections: ``gateway.push(users, frame)`` reaches them."""
    fanout: Fanout | None = None
    """Pushes committed messages to the members connected here (its counters are metrics)."""
    presence: ClusterPresence | None = None
    """Claims this node's users in the presence book and announces changes to friends."""
    typing: TypingThrottle = field(default_factory=TypingThrottle)
    """At most one "is typing" per user and room every few seconds."""
    deliver_latency: Histogram = field(
        default_factory=lambda: latency_histogram(
            "chat_deliver_latency_seconds",
            "From the intake's timestamp to the push of the committed message on this node",
        )
    )


@contextlib.asynccontextmanager
async def chat_service(settings: Settings, stores: Stores) -> AsyncIterator[ChatRuntime]:
    if stores.documents is None:
        raise RuntimeError("the chat service needs the document store")
    async with EventPublisher(stores.queue, "chat").running() as events:
        social = SocialService(
            stores.engine,
            events,
            member_cache_seconds=settings.chat.member_cache_seconds,
            reads=stores.reads,
        )
        social.rooms.on_deleted = purge_room(stores)
        gateway = Registry(signin_concurrency=settings.chat.signin_concurrency)
        social.set_notifier(gateway.notify)
        if stores.presence is None:
            raise RuntimeError("the chat service needs the presence book")
        presence = ClusterPresence(stores.presence, stores.doorbell, social, gateway)
        gateway.presence = presence.changed
        gateway.signed_in = presence.snapshot
        intake = Intake(stores.queue, social.is_member, partitions=settings.chat.partitions)
        await intake.declare()
        runtime = ChatRuntime(
            settings=settings,
            stores=stores,
            events=events,
            social=social,
            intake=intake,
            history=History(stores.documents),
            gateway=gateway,
        )
        gateway.device_online = pending_on_connect(stores.documents)
        # One subscription, so that membership rings and commit rings keep Redis's order.
        channels = [
            *commit_channels(intake.partitions),
            TO_DEVICE_CHANNEL,
            SESSION_ENDED_CHANNEL,
            MEMBERSHIP_CHANNEL,
        ]
        fanout = Fanout(stores.doorbell, channels, social.members_cache, gateway)
        fanout.latency = runtime.deliver_latency
        runtime.fanout = fanout
        runtime.presence = presence
        events.emit("service", "chat", action="start")
        async with (
            social.members_cache.running(stores.doorbell),
            presence.running(),
            fanout.running(),
        ):
            log.info("chat service ready", extra={"partitions": intake.partitions})
            try:
                yield runtime
            finally:
                # Normally already closed by the gateway's on_shutdown; this catches stragglers.
                await runtime.gateway.close_all()
                events.emit("service", "chat", action="stop")


def chat_metrics(runtime: ChatRuntime, _: Stores) -> ServiceMetrics:
    gateway, intake, fanout = runtime.gateway, runtime.intake, runtime.fanout
    presence = runtime.presence
    cache = runtime.social.members_cache
    assert fanout is not None and presence is not None  # set before the runtime is handed out
    sends = runtime.events.tally.counts
    return ServiceMetrics(
        [
            gauge("chat_sockets", "Authenticated WebSocket connections here", gateway.__len__),
            gauge("chat_users_online", "Distinct users connected here", gateway.users_online),
            gauge(
                "chat_signins_waiting",
                "Sockets whose auth frame waits for a sign-in turn (chat.signin_concurrency)",
                lambda: gateway.signing_in.waiting,
            ),
            counter(
                "chat_messages_accepted",
                "Messages made durable (queue-confirmed) and acked to the sender",
                lambda: intake.accepted,
            ),
            counter(
                "chat_messages_delivered",
                "Committed messages pushed to connections here",
                lambda: fanout.delivered,
            ),
            counter(
                "chat_sends",
                "send frames answered, by result and error code",
                lambda: {(r, why): n for (c, r, why), n in sends.items() if c == "send"},
                labels=("result", "reason"),
            ),
            counter(
                "chat_push_failures",
                "Committed messages that could not be pushed when rung (retried, then resync)",
                lambda: fanout.push_failures,
            ),
            counter(
                "chat_presence_failures",
                "Presence changes not recorded or announced (a store was unreachable)",
                lambda: presence.failures,
            ),
            counter(
                "chat_member_checks",
                "Room member lookups (the check of sends, reads and typing; the recipients of "
                "pushes, per room), by where the answer came from",
                lambda: {("cache",): cache.hits, ("database",): cache.misses},
                labels=("source",),
            ),
            counter(
                "chat_membership_ring_failures",
                "Membership change rings (changing, changed) made here that failed (other nodes "
                "re-read within chat.member_cache_seconds)",
                lambda: cache.ring_failures,
            ),
            counter(
                "chat_doorbell_resyncs",
                "Doorbell interruptions: every client here was told to resync",
                lambda: fanout.resyncs,
            ),
            *events_readings(runtime.events),
        ],
        histograms=[runtime.deliver_latency],
    )


def create_routes() -> web.Application:
    """The chat sub-application: routes only; resources come from the root app."""
    app = web.Application()
    table = views.routes()
    table.add(
        "GET",
        "/metrics",
        metrics_view,
        "Prometheus metrics (from loopback and server.metrics_allow only)",
        auth=False,
    )
    document = table.openapi(title="sealchat chat", version=__version__)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    table.register(app)
    app.router.add_get("/openapi.json", openapi)
    gateway_views.install(app)
    return app


def create_app(settings: Settings) -> web.Application:
    """The chat service with auth and the archiver beside it in one process, as
    ``sealchatd all`` runs them (tests, the embedded mode)."""
    from backend.server import build_root

    return build_root(settings, ["auth", "chat", "archiver"])
