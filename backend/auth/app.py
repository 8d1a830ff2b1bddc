"""The auth service: accounts, tokens, devices and keys under ``/auth/``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from backend import __version__
from backend.auth import views
from backend.auth.passwords import PasswordHasher
from backend.auth.service import AuthService
from backend.auth.store import AuthStore
from backend.auth.throttle import LoginThrottle
from backend.common.events import EventPublisher
from backend.common.metrics import ServiceMetrics, counter, events_readings, metrics_view
from backend.common.resources import Stores, data_path
from backend.common.settings import Mode, Settings, SettingsError
from backend.common.tokens import SigningKey, TokenIssuer, load_or_create_key
from backend.protocol.errors import ErrorCode

log = logging.getLogger("sealchat.auth")

EMBEDDED_KEY_FILE = "secrets/jwt-ed25519.pem"
PURGE_INTERVAL_SECONDS = 600


def signing_keys(settings: Settings) -> list[SigningKey]:
    """Configured keys (first signs); the embedded mode makes its own on first start."""
    if settings.auth.signing_keys:
        keys = []
        for path in settings.auth.signing_keys:
            try:
                keys.append(SigningKey.load(path))
            except (OSError, ValueError) as exc:
                raise SettingsError(
                    f"setting auth.signing_keys: cannot load {path}: {exc}"
                ) from None
        return keys
    if settings.mode is Mode.CLUSTER:
        raise SettingsError(
            "setting auth.signing_keys (SEALCHAT_AUTH__SIGNING_KEYS): required in cluster mode; "
            "make one with `sealchatd gen-key PATH`"
        )
    return [load_or_create_key(data_path(settings, EMBEDDED_KEY_FILE))]


@contextlib.asynccontextmanager
async def auth_service(settings: Settings, stores: Stores) -> AsyncIterator[AuthService]:
    a = settings.auth
    issuer = TokenIssuer(signing_keys(settings), issuer=a.issuer, ttl_seconds=a.access_ttl_seconds)
    hasher = PasswordHasher(
        time_cost=a.argon2_time_cost,
        memory_kib=a.argon2_memory_kib,
        parallelism=a.argon2_parallelism,
        concurrency=a.hash_concurrency,
    )
    async with EventPublisher(stores.queue, "auth").running() as events:
        service = AuthService(
            store=AuthStore(stores.engine),
            hasher=hasher,
            throttle=LoginThrottle(stores.kv, a),
            issuer=issuer,
            kv=stores.kv,
            doorbell=stores.doorbell,
            events=events,
            settings=a,
        )
        events.emit("service", "auth", action="start")
        denied = await service.restore_denials()
        log.info(
            "auth service ready",
            extra={"kid": issuer.jwks()["keys"][0]["kid"], "denied_sessions": denied},
        )
        housekeeping = asyncio.create_task(_purge_forever(service), name="auth-purge")
        try:
            yield service
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            events.emit("service", "auth", action="stop")


async def _purge_forever(service: AuthService) -> None:
    """Drop dead sessions now and then; a failed round is logged and retried next time."""
    while True:
        try:
            purged = await service.purge()
            if purged:
                log.info("purged sessions", extra={"purged_sessions": purged})
        except Exception:
            log.exception("session purge failed; retrying later")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def auth_metrics(service: AuthService, _: Stores) -> ServiceMetrics:
    """Logins and their failures, counted from the events auth emits for them."""
    tally = service.events.tally.counts

    def total(category: str, result: str, reason: str | None = None) -> int:
        return sum(
            n
            for (c, r, why), n in tally.items()
            if c == category and r == result and (reason is None or why == reason)
        )

    throttled = ErrorCode.THROTTLED.value
    return ServiceMetrics(
        [
            counter("auth_successes", "Successful logins", lambda: total("signin", "success")),
            counter(
                "auth_failures",
                "Refused logins (wrong id or password) and refresh-token reuse",
                lambda: (
                    total("signin", "fail", ErrorCode.BAD_CREDENTIALS.value)
                    + total("refresh", "fail")
                ),
            ),
            counter(
                "auth_throttled",
                "Logins and password checks refused by the failure throttle",
                lambda: total("signin", "fail", throttled) + total("account", "fail", throttled),
            ),
            counter("auth_signups", "Accounts created", lambda: total("signup", "success")),
            *events_readings(service.events),
        ]
    )


def create_routes() -> web.Application:
    """The auth sub-application: routes only; resources come from the root app."""
    app = web.Application()
    table = views.routes()
    table.add(
        "GET",
        "/metrics",
        metrics_view,
        "Prometheus metrics (from loopback and server.metrics_allow only)",
        auth=False,
    )
    document = table.openapi(title="sealchat auth", version=__version__)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    table.register(app)
    app.router.add_get("/openapi.json", openapi)
    return app


def create_app(settings: Settings) -> web.Application:
    """The auth service alone, mounted under /auth/ (cluster mode and tests)."""
    from backend.server import build_root

    return build_root(settings, ["auth"])
