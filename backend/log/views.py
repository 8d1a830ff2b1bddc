"""HTTP edge of the log service: health, the operators' query API, metrics."""

from __future__ import annotations

from aiohttp import web

from backend.common.api import RouteTable, parse_model, reply
from backend.common.errors import ApiError
from backend.common.metrics import metrics_view
from backend.common.tokens import AccessClaims, audience
from backend.common.typedefs import GUARD
from backend.log.schemas import EventFilter, EventsOut, Health
from backend.log.typedefs import LOG_RUNTIME
from backend.protocol.errors import ErrorCode

ADMIN_ROLE = "admin"
NOT_AN_OPERATOR = (
    "the event log is for operators: ask one to add your id to auth.admins, then log in again"
)


async def require_admin(request: web.Request) -> AccessClaims:
    """A signed-in operator, or 401 (no valid login) / 403 (a user who is not one).

    The guard accepts any valid sealchat login (``ServiceSpec.audience``); the log audience
    and the admin role are checked here, by every view that reads the log.
    """
    claims = await request.config_dict[GUARD].require(request)
    if claims.role != ADMIN_ROLE or audience("log") not in claims.aud:
        raise ApiError(ErrorCode.FORBIDDEN, NOT_AN_OPERATOR)
    return claims


async def health(_: web.Request) -> web.Response:
    return reply(Health(message="alive"))


async def events(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_model(EventFilter, dict(request.query))
    found = await request.config_dict[LOG_RUNTIME].queries.events(query)
    return web.json_response(found.model_dump(mode="json"))  # request_id: null stays


def routes() -> RouteTable:
    table = RouteTable("log")
    table.add("GET", "/health", health, "Liveness", response=Health, auth=False)
    table.add(
        "GET",
        "/events",
        events,
        "Event records, newest first: filter by server, category, id, since, until; "
        "limit (1-1000, default 100). Operators (auth.admins) only.",
        response=EventsOut,
        errors=(ErrorCode.FORBIDDEN, ErrorCode.INVALID),
    )
    table.add(
        "GET",
        "/metrics",
        metrics_view,
        "Prometheus metrics (from loopback and server.metrics_allow only)",
        auth=False,
        errors=(ErrorCode.FORBIDDEN,),
    )
    return table
