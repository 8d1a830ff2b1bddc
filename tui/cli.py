"""``sealchat``: the terminal client (the Textual app and the headless commands land later)."""

from __future__ import annotations

import argparse
import sys

from tui import __version__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sealchat", description="The sealchat terminal client.")
    p.add_argument("--version", action="version", version=f"sealchat {__version__}")
    p.parse_args(argv)
    print(
        "sealchat: the client is not built yet; the server runs with `make run`.", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
