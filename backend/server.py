"""Composing services into one process: the root app, its middlewares and resources.

``sealchatd all`` mounts every built service under its prefix on one port; ``sealchatd
auth`` mounts one. Either way the root app owns the stores (one cleanup context), and each
service's runtime is entered after them and left before them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from backend.auth.app import auth_service
from backend.auth.app import create_routes as auth_routes
from backend.common.auth_guard import Guard
from backend.common.middlewares import error_middleware, request_id_middleware
from backend.common.resources import open_stores
from backend.common.settings import Settings
from backend.common.tokens import TokenVerifier, keys_by_kid
from backend.common.typedefs import AUTH_SERVICE, GUARD, SETTINGS, STORES


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    routes: Callable[[], web.Application]
    needs_documents: bool


#: The services that exist so far, in mount order.
SERVICES: dict[str, ServiceSpec] = {
    "auth": ServiceSpec(routes=auth_routes, needs_documents=False),
}


def _resources(
    settings: Settings, subapps: dict[str, web.Application]
) -> Callable[[web.Application], Any]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = list(subapps)
        documents = any(SERVICES[s].needs_documents for s in services)
        async with contextlib.AsyncExitStack() as stack:
            stores = await stack.enter_async_context(open_stores(settings, documents=documents))
            app[STORES] = stores
            if "auth" in services:
                auth = await stack.enter_async_context(auth_service(settings, stores))
                app[AUTH_SERVICE] = auth
                keys = lambda: keys_by_kid(auth.issuer.jwks())  # noqa: E731
            for name, subapp in subapps.items():
                # Each service checks that a token was issued for it (its own ``aud``).
                verifier = TokenVerifier(keys, issuer=settings.auth.issuer, service=name)
                subapp[GUARD] = Guard(verifier, stores.kv)
            yield

    return ctx


def build_root(settings: Settings, services: list[str]) -> web.Application:
    unknown = set(services) - SERVICES.keys()
    if unknown:
        raise ValueError(f"services not built yet: {sorted(unknown)}")
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware],
        client_max_size=settings.server.max_body_bytes,
    )
    app[SETTINGS] = settings
    subapps = {name: SERVICES[name].routes() for name in services}
    app.cleanup_ctx.append(_resources(settings, subapps))
    for name, subapp in subapps.items():
        app.add_subapp(f"/{name}", subapp)
    return app
