"""Application keys, in one place so every module names a resource the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from backend.archiver.archiver import Archiver
    from backend.auth.service import AuthService
    from backend.chat.app import ChatRuntime
    from backend.common.auth_guard import Guard
    from backend.common.events import EventPublisher
    from backend.common.resources import Stores
    from backend.common.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORES: web.AppKey[Stores] = web.AppKey("stores")
EVENTS: web.AppKey[EventPublisher] = web.AppKey("events")
GUARD: web.AppKey[Guard] = web.AppKey("guard")
AUTH_SERVICE: web.AppKey[AuthService] = web.AppKey("auth_service")
CHAT_RUNTIME: web.AppKey[ChatRuntime] = web.AppKey("chat_runtime")
ARCHIVER: web.AppKey[Archiver] = web.AppKey("archiver")
