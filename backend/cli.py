"""``sealchatd``: run the services, migrate the schema, make keys."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from backend import __version__
from backend.common import certs
from backend.common.jwks_client import JwksUnavailable
from backend.common.logs import setup_logging
from backend.common.middlewares import REQUEST_ID_HEADER
from backend.common.settings import Mode, Settings, SettingsError, load_settings
from backend.common.tokens import SigningKey, write_secret_file
from backend.stores.relational.migrate import SchemaNotMigrated

EVERY_SERVICE = ["auth", "chat", "archiver", "log"]

log = logging.getLogger("sealchat.cli")


class AccessLogger(AbstractAccessLogger):
    """One structured line per request: method, path, status, duration (no headers, no body)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status,
            extra={
                "status": response.status,
                "ms": round(time * 1000, 2),
                "remote": request.remote,
                # The request's context has ended by now; the response still carries its id.
                "request_id": response.headers.get(REQUEST_ID_HEADER),
            },
        )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--data-dir", type=Path, help="where the embedded mode keeps its data")


def _listen(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default: the service's own)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sealchatd", description="The sealchat server.")
    p.add_argument("--version", action="version", version=f"sealchatd {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("all", help="every service in one process (default port 8080)")
    _common(run)
    _listen(run)
    for name in EVERY_SERVICE:
        s = sub.add_parser(name, help=f"run the {name} service alone (cluster mode)")
        _common(s)
        _listen(s)
    from backend.log import terminal

    logs = sub.add_parser("logs", help="show the event log (operators; --follow to keep going)")
    terminal.add_arguments(logs)
    certs.add_parser(sub)
    m = sub.add_parser("migrate", help="bring the database schema up to date")
    _common(m)
    k = sub.add_parser("gen-key", help="write a new Ed25519 token-signing key (mode 0600)")
    k.add_argument("path", type=Path)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = str(args.data_dir)
    server = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    if server:
        overrides["server"] = server
    return load_settings(args.config, overrides)


async def _freeze_startup_heap(_: web.Application) -> None:
    """Runs last at startup. What exists by then (modules, models, compiled statements, pools:
    ~130k objects after the imports alone) lives as long as the process; frozen, it is no
    longer walked by the cyclic GC, whose full collections then look only at what came since.
    Those collections had paused a busy chat node for 100-140 ms (bench/README.md)."""
    gc.collect()
    gc.freeze()


def serving_app(settings: Settings, services: list[str]) -> web.Application:
    """The root application ``sealchatd`` serves (tests build theirs with ``create_app``)."""
    from backend.server import build_root

    app = build_root(settings, services)
    app.on_startup.append(_freeze_startup_heap)
    return app


def _serve(settings: Settings, service: str) -> None:
    services = EVERY_SERVICE if service == "all" else [service]
    app = serving_app(settings, services)
    host, port = settings.server.host, settings.listen_port(service)
    where = f"data in {settings.data_dir}" if settings.mode is Mode.EMBEDDED else "cluster mode"

    def announce(_: str) -> None:
        print(
            f"sealchatd {service} listening on http://{host}:{port} ({where}); "
            f"services: {', '.join('/' + s for s in services)}. Press Ctrl+C to stop.",
            flush=True,
        )

    web.run_app(
        app,
        host=host,
        port=port,
        print=announce,
        access_log_class=AccessLogger,
        shutdown_timeout=settings.server.shutdown_timeout,
        handler_cancellation=True,
    )


async def _migrate(settings: Settings) -> None:
    from backend.common.resources import relational_url
    from backend.stores.relational import migrate
    from backend.stores.relational.engine import open_engine

    engine = open_engine(relational_url(settings))
    try:
        before, after = await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    print(
        f"schema at revision {after}" + ("" if before == after else f" (was {before or 'empty'})")
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "gen-key":
        try:
            write_secret_file(args.path, SigningKey.generate().pem())
        except FileExistsError:
            print(
                f"sealchatd: {args.path} exists; choose a new path (keys are never overwritten)",
                file=sys.stderr,
            )
            return 2
        print(f"wrote {args.path} (kid {SigningKey.load(args.path).kid})")
        return 0
    if args.command == "gen-certs":
        return certs.run(args)
    if args.command == "logs":
        from backend.log import terminal

        return terminal.run(args)
    try:
        settings = _settings(args)
        setup_logging(
            args.command,
            level=settings.log.level,
            fmt=settings.log.format,
            cluster=settings.mode is Mode.CLUSTER,
        )
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        else:
            _serve(settings, args.command)
    except (SettingsError, SchemaNotMigrated, JwksUnavailable) as exc:
        print(f"sealchatd: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"sealchatd: {exc.strerror or exc}; is another sealchatd already running on that port, "
            "or a store down?",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
