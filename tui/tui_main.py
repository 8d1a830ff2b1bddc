"""``sealchat`` with no sub-command: the Textual client (``--home`` picks the profile)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tui.client.profile import DEFAULT_SERVER, default_home


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="profile directory (one per account and device)")
    p.add_argument("--server", help=f"server URL for the first run (default {DEFAULT_SERVER})")
    p.add_argument(
        "--start-server",
        action="store_true",
        help="start `sealchatd all` in the background first if nothing answers on this machine",
    )


async def _ensure_local_server(url: str) -> None:
    import platformdirs

    from tui.screens.local_server import is_local, reachable, start_local_server

    if not is_local(url) or await reachable(url):
        return
    print(f"sealchat: starting a local server on {url} …", file=sys.stderr)
    pid = await start_local_server(url, Path(platformdirs.user_data_dir("sealchatd")))
    print(
        f"sealchat: local server running (pid {pid}); it keeps running after you quit",
        file=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    """Open the terminal client; returns the exit code."""
    from tui.app import SealchatApp  # Textual loads only for the interactive client
    from tui.client.profile import Profile

    home = Path(args.home).expanduser() if getattr(args, "home", None) else default_home()
    server = getattr(args, "server", None)
    if getattr(args, "start_server", False):
        config = Profile(home).config()
        try:
            asyncio.run(
                _ensure_local_server(
                    server or (config.server if config else None) or DEFAULT_SERVER
                )
            )
        except (OSError, RuntimeError, TimeoutError) as exc:
            print(f"sealchat: could not start the local server: {exc}", file=sys.stderr)
            return 1
    SealchatApp(home, server).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sealchat", description="The sealchat terminal client.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
