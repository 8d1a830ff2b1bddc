"""Application keys of the log service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from backend.log.app import LogRuntime

LOG_RUNTIME: web.AppKey[LogRuntime] = web.AppKey("log_runtime")
