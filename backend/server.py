"""Composing services into one process: the root app, its middlewares and resources.

``sealchatd all`` mounts every built service under its prefix on one port; ``sealchatd
auth`` mounts one. Either way the root app owns the stores (one cleanup context), and each
service's runtime is entered after them and left before them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from backend.archiver.app import archiver_metrics, archiver_runtime
from backend.archiver.app import create_routes as archiver_routes
from backend.auth.app import auth_metrics, auth_service
from backend.auth.app import create_routes as auth_routes
from backend.chat.app import chat_metrics, chat_service
from backend.chat.app import create_routes as chat_routes
from backend.common.auth_guard import Guard
from backend.common.jwks_client import RemoteJwks
from backend.common.metrics import METRICS, ServiceMetrics
from backend.common.middlewares import echo_request_id, error_middleware, request_id_middleware
from backend.common.resources import Stores, open_stores
from backend.common.settings import Settings, SettingsError
from backend.common.tokens import TokenVerifier, keys_by_kid
from backend.common.typedefs import ARCHIVER, AUTH_SERVICE, CHAT_RUNTIME, GUARD, SETTINGS, STORES
from backend.log.app import create_routes as log_routes
from backend.log.app import log_metrics, log_service
from backend.log.typedefs import LOG_RUNTIME


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    routes: Callable[[], web.Application]
    """Builds the service's sub-application (routes only)."""
    runtime: Callable[[Settings, Stores], AbstractAsyncContextManager[Any]]
    """Starts the service on open stores; what it yields is stored under ``key``."""
    key: web.AppKey[Any]
    needs_documents: bool
    metrics: Callable[[Any, Stores], ServiceMetrics]
    """Builds the service's metrics (``GET /<service>/metrics``) over its runtime."""
    audience: str | None = None
    """Whose tokens the service's guard accepts (default: its own audience). The log takes
    any sealchat login so that a signed-in user who is not an operator gets 403, not 401."""


#: The services that exist so far, in mount order (auth first: the others verify its tokens).
SERVICES: dict[str, ServiceSpec] = {
    "auth": ServiceSpec(auth_routes, auth_service, AUTH_SERVICE, False, auth_metrics),
    "chat": ServiceSpec(chat_routes, chat_service, CHAT_RUNTIME, True, chat_metrics),
    "archiver": ServiceSpec(archiver_routes, archiver_runtime, ARCHIVER, True, archiver_metrics),
    "log": ServiceSpec(log_routes, log_service, LOG_RUNTIME, True, log_metrics, audience="auth"),
}


async def _token_keys(
    settings: Settings, app: web.Application, stack: contextlib.AsyncExitStack
) -> tuple[Callable[[], dict[str, dict[str, str]]], Callable[[str], Awaitable[bool]] | None]:
    """Where this process reads token keys: its own auth service, or auth's JWKS over HTTP."""
    if AUTH_SERVICE in app:
        issuer = app[AUTH_SERVICE].issuer
        return (lambda: keys_by_kid(issuer.jwks())), None
    if settings.auth.jwks_url is None:
        raise SettingsError(
            "setting auth.jwks_url (SEALCHAT_AUTH__JWKS_URL): required where auth does not run "
            "in the same process, e.g. http://auth-node:8081/auth/.well-known/jwks.json"
        )
    remote = RemoteJwks(settings.auth.jwks_url)
    stack.push_async_callback(remote.close)
    await remote.start()
    return remote.keys, remote.refresh


def _resources(
    settings: Settings, subapps: dict[str, web.Application]
) -> Callable[[web.Application], Any]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        documents = any(SERVICES[s].needs_documents for s in subapps)
        async with contextlib.AsyncExitStack() as stack:
            stores = await stack.enter_async_context(open_stores(settings, documents=documents))
            app[STORES] = stores
            for name in subapps:
                spec = SERVICES[name]
                app[spec.key] = await stack.enter_async_context(spec.runtime(settings, stores))
                subapps[name][METRICS] = spec.metrics(app[spec.key], stores)
            keys, refresh = await _token_keys(settings, app, stack)
            for name, subapp in subapps.items():
                # Each service checks that a token was issued for it (its own ``aud``).
                accepts = SERVICES[name].audience or name
                verifier = TokenVerifier(keys, issuer=settings.auth.issuer, service=accepts)
                subapp[GUARD] = Guard(verifier, stores.kv, refresh)
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
    app.on_response_prepare.append(echo_request_id)
    app[SETTINGS] = settings
    subapps = {name: SERVICES[name].routes() for name in services}
    app.cleanup_ctx.append(_resources(settings, subapps))
    for name, subapp in subapps.items():
        app.add_subapp(f"/{name}", subapp)
    return app
