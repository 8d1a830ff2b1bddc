"""Structured logging: JSON lines for machines, readable lines for people.

Every record carries the service name and the current request id. Log calls pass facts
(ids, counts, codes) — never a message body, a password or a token; as a second line of
defence, ``extra`` fields with a sensitive name are dropped before formatting.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

SENSITIVE = frozenset(
    {"passwd", "password", "token", "refresh_token", "access_token", "ciphertext", "body", "secret"}
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and k not in SENSITIVE and not k.startswith("_")
    }


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_extras(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = _extras(record)
        service = extras.pop("service", "")
        rid = extras.pop("request_id", None)
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        line = f"{ts} {record.levelname:<7} {service:<6} {record.getMessage()}"
        if tail:
            line += f"  {tail}"
        if rid:
            line += f"  [{rid}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(
    service: str, *, level: str = "INFO", fmt: str = "auto", cluster: bool = False
) -> None:
    """Configure the root logger once per process."""
    use_json = fmt == "json" or (fmt == "auto" and (cluster or not sys.stderr.isatty()))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (pika's per-frame debug lines, alembic's banner) is not ours to show.
    for noisy in ("pika", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
