"""The chat service: friends, rooms, the WebSocket gateway and history under ``/chat/``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from backend import __version__
from backend.chat import views
from backend.common.events import EventPublisher
from backend.common.resources import Stores
from backend.common.settings import Settings

log = logging.getLogger("sealchat.chat")


@dataclass(slots=True)
class ChatRuntime:
    """Everything the chat views and the gateway share within one process."""

    settings: Settings
    stores: Stores
    events: EventPublisher


@contextlib.asynccontextmanager
async def chat_service(settings: Settings, stores: Stores) -> AsyncIterator[ChatRuntime]:
    if stores.documents is None:
        raise RuntimeError("the chat service needs the document store")
    async with EventPublisher(stores.queue, "chat").running() as events:
        runtime = ChatRuntime(settings=settings, stores=stores, events=events)
        events.emit("service", "chat", action="start")
        log.info("chat service ready")
        try:
            yield runtime
        finally:
            events.emit("service", "chat", action="stop")


def create_routes() -> web.Application:
    """The chat sub-application: routes only; resources come from the root app."""
    app = web.Application()
    table = views.routes()
    document = table.openapi(title="sealchat chat", version=__version__)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    table.register(app)
    app.router.add_get("/openapi.json", openapi)
    return app


def create_app(settings: Settings) -> web.Application:
    """The chat service with auth beside it in one process (tests, the embedded mode)."""
    from backend.server import build_root

    return build_root(settings, ["auth", "chat"])
