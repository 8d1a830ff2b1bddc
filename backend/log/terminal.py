"""``sealchatd logs``: the event log in a terminal, as a table coloured by category.

It is a client of ``GET /log/events`` like any other: it signs in as an operator (a token
file, or an id and a password typed at the prompt, never on the command line), asks for the
newest records, and with ``--follow`` asks again every few seconds for what came since.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

COLOURS = {
    "signin": "green",
    "signup": "bright_green",
    "refresh": "cyan",
    "logout": "blue",
    "keys": "magenta",
    "account": "bright_magenta",
    "connect": "bright_cyan",
    "disconnect": "bright_black",
    "send": "white",
    "archive": "bright_blue",
    "room": "yellow",
    "friend": "bright_yellow",
    "service": "bold",
    "dead-letter": "bold red",
}
FILTERS = ("server", "category", "id", "since", "until")
SEEN_LIMIT = 10_000


class LogsError(Exception):
    """Shown to the operator as one line; says what to do next."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8080", help="where /log/ is served")
    p.add_argument("--auth-url", help="where /auth/ is served (default: --url)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--token-file", type=Path, help="a file holding an operator's access token")
    who.add_argument("--user", help="operator id to log in as (the password is prompted for)")
    for name in FILTERS:
        p.add_argument(f"--{name}", help=f"only records with this {name}")
    p.add_argument("--limit", type=int, default=50, help="records per request (1-1000)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between --follow polls")
    p.add_argument("--json", action="store_true", help="one JSON record per line, no table")


def _request(url: str, *, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")  # noqa: S310
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:  # noqa: S310 (an operator's URL)
            return json.load(r)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise LogsError(f"{exc.code} from {url.split('?')[0]}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LogsError(
            f"cannot reach {url.split('?')[0]} ({exc}): is sealchatd running?"
        ) from None


def access_token(args: argparse.Namespace, prompt: Callable[[str], str] = getpass.getpass) -> str:
    if args.token_file is not None:
        try:
            return args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise LogsError(f"cannot read {args.token_file}: {exc.strerror}") from None
    if args.user is None:
        raise LogsError("say who you are: --user OPERATOR_ID, or --token-file PATH")
    base = (args.auth_url or args.url).rstrip("/")
    reply = _request(
        f"{base}/auth/login",
        body={"id": args.user, "passwd": prompt(f"password for {args.user}: ")},
    )
    return str(reply["token"])


def fetch(args: argparse.Namespace, token: str, since: str | None = None) -> list[dict[str, Any]]:
    params = {name: getattr(args, name) for name in FILTERS if getattr(args, name)}
    if since is not None:
        params["since"] = since
    params["limit"] = str(args.limit)
    url = f"{args.url.rstrip('/')}/log/events?{urllib.parse.urlencode(params)}"
    events: list[dict[str, Any]] = _request(url, token=token)["events"]
    return list(reversed(events))  # the API answers newest first; a terminal reads downwards


def _data(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in data.items())


def render(console: Console, events: Iterable[dict[str, Any]], *, as_json: bool) -> None:
    events = list(events)
    if as_json:
        for event in events:
            print(json.dumps(event, separators=(",", ":")), flush=True)
        return
    if not events:
        return
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("datetime", "server", "category", "id", "data", "request"):
        table.add_column(column, overflow="fold")
    for e in events:
        style = COLOURS.get(e["category"], "")
        table.add_row(
            e["datetime"],
            e["server"],
            Text(e["category"], style=style),
            e["id"],
            _data(e.get("data") or {}),
            (e.get("request_id") or "")[:12],
        )
    console.print(table)


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console(highlight=False)
    try:
        token = access_token(args)
        events = fetch(args, token, args.since)
        render(console, events, as_json=args.json)
        if not args.follow:
            return 0
        seen: deque[str] = deque((e["event_id"] for e in events), maxlen=SEEN_LIMIT)
        since = events[-1]["datetime"] if events else args.since
        while True:
            time.sleep(args.interval)
            fresh = [e for e in fetch(args, token, since) if e["event_id"] not in seen]
            seen.extend(e["event_id"] for e in fresh)
            if fresh:
                since = fresh[-1]["datetime"]
            render(console, fresh, as_json=args.json)
    except LogsError as exc:
        print(f"sealchatd logs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
