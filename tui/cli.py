"""``sealchat``: the terminal client's headless commands, for people, scripts and tests.

Exit codes: 0 done, 1 failed (the message says what to do next), 2 bad usage. ``--json``
prints machine-readable results, one JSON document per line. Secrets never come from the
command line: the account password from a prompt or ``--password-stdin``, the local passphrase
from a prompt or ``SEALCHAT_PASSPHRASE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable

from tui import __version__
from tui.client.errors import ApiError, ClientError
from tui.client.profile import default_home
from tui.crypto import CryptoError

Command = Callable[..., Awaitable[int]]


def _parser() -> argparse.ArgumentParser:
    from tui.commands import account, messages, social

    p = argparse.ArgumentParser(prog="sealchat", description="The sealchat terminal client.")
    p.add_argument("--version", action="version", version=f"sealchat {__version__}")
    p.add_argument(
        "--server", help="server URL (default: the profile's, else http://127.0.0.1:8080)"
    )
    p.add_argument(
        "--home", default=str(default_home()), help="profile directory (one per account)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--start-server",
        action="store_true",
        help="(interactive client) start `sealchatd all` in the background if nothing answers",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, run: Command, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(run=run)
        return sp

    sp = cmd("register", account.register, "create an account on the server and log in")
    sp.add_argument("user")
    sp.add_argument("--email", required=True, help="your e-mail address (never shown to others)")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sp = cmd("login", account.login, "log in (and set up this device's keys)")
    sp.add_argument("user")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    cmd("logout", account.logout, "end this session on the server")
    cmd("whoami", account.whoami, "who this profile is logged in as")
    cmd("devices", account.devices, "your registered devices")
    sp = cmd("verify", account.verify, "show the safety number you share with USER")
    sp.add_argument("user")
    sp.add_argument(
        "--acknowledge", action="store_true", help="accept USER's changed key and send again"
    )

    sp = cmd("friends", social.friends, "friends, requests and blocks")
    fs = sp.add_subparsers(dest="action", metavar="ACTION")
    fs.add_parser("list", help="friends, requests, blocks")
    for action in ("add", "accept", "decline", "cancel", "remove", "block", "unblock"):
        fs.add_parser(action, help=f"{action} USER").add_argument("user")
    sp.set_defaults(action="list")

    sp = cmd("rooms", social.rooms, "rooms and invites")
    rs = sp.add_subparsers(dest="action", metavar="ACTION")
    rs.add_parser("list", help="your rooms and invites")
    c = rs.add_parser("create", help="create a group room")
    c.add_argument("name")
    c.add_argument("--topic")
    for action, with_user in (
        ("show", False), ("invite", True), ("join", False), ("decline", False),
        ("kick", True), ("leave", False), ("delete", False),
    ):  # fmt: skip
        a = rs.add_parser(action, help=f"{action} a room (ROOM: id, name or @user)")
        a.add_argument("room")
        if with_user:
            a.add_argument("user")
        if action in ("leave", "delete"):
            a.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    sp.set_defaults(action="list")

    sp = cmd("send", messages.send, "send an encrypted message (TEXT, or stdin)")
    sp.add_argument("room", help="room id, name, or @user")
    sp.add_argument("text", nargs="?", help="the message; omit or '-' to read stdin")
    sp.add_argument("--ttl", type=int, help="disappear after this many seconds")
    sp = cmd("send-file", messages.send_file, "send an encrypted file")
    sp.add_argument("room")
    sp.add_argument("path")
    sp.add_argument("--ttl", type=int, help="disappear after this many seconds")
    sp = cmd("tail", messages.tail, "show a room's latest messages")
    sp.add_argument("room")
    sp.add_argument("--count", type=int, default=20, help="how many (default 20)")
    sp.add_argument("--follow", "-f", action="store_true", help="keep printing new messages")
    sp.add_argument("--save", metavar="DIR", help="save attachments into DIR (verified first)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no sub-command: the interactive Textual client
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # Without a terminal it would wait for keys forever (scripts, CI, a pipe).
            parser.error("the interactive client needs a terminal; in scripts give a COMMAND")
        from tui.tui_main import run as run_tui

        return run_tui(args)
    if getattr(args, "count", 1) is not None and getattr(args, "count", 1) < 1:
        parser.error("--count must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="sealchat: %(message)s")
    from tui.commands.context import CommandError, Context

    ctx = Context(args)
    try:
        return asyncio.run(args.run(ctx))
    except KeyboardInterrupt:
        return 130
    except (CommandError, ClientError, CryptoError) as exc:
        message = str(exc) if not isinstance(exc, ApiError) else exc.message
        if args.json:
            code = exc.code if isinstance(exc, ApiError) else type(exc).__name__
            print(json.dumps({"error": {"code": code, "message": message}}), file=sys.stderr)
        else:
            print(f"sealchat: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
