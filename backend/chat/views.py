"""HTTP edge of the chat service: parse, call the service, reply."""

from __future__ import annotations

from aiohttp import web

from backend.auth.schemas import Health
from backend.chat.social_views import add_social_routes
from backend.common.api import RouteTable, reply


async def health(request: web.Request) -> web.Response:
    return reply(Health(message="alive"))


def routes() -> RouteTable:
    t = RouteTable("chat")
    t.add("GET", "/health", health, "Liveness", response=Health, auth=False)
    add_social_routes(t)
    return t
