"""SVG snapshots of the app's screens, compared byte for byte with the committed ones.

This is what pytest-textual-snapshot does (same SVG export, ``App.export_screenshot``), kept
to one small function because that plugin pins syrupy 4.8, which refuses pytest 9. A missing
or different picture fails; ``SEALCHAT_SNAPSHOT_UPDATE=1`` writes the new ones (look at them
before committing). A failure leaves the new picture beside the old as ``NAME.actual.svg``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.pilot import Pilot

SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "test_snapshots"
UPDATE = os.environ.get("SEALCHAT_SNAPSHOT_UPDATE") == "1"


async def assert_snapshot(
    app: App[Any],
    name: str,
    size: tuple[int, int],
    run_before: Callable[[Pilot[Any]], Awaitable[None]] | None = None,
) -> None:
    async with app.run_test(size=size) as pilot:
        if run_before is not None:
            await run_before(pilot)
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        svg = app.export_screenshot(title=type(app).__name__)
    expected = SNAPSHOTS / f"{name}.svg"
    actual = expected.with_suffix(".actual.svg")
    if UPDATE:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        expected.write_text(svg)
        actual.unlink(missing_ok=True)
        return
    if not expected.exists():
        actual.parent.mkdir(parents=True, exist_ok=True)
        actual.write_text(svg)
        raise AssertionError(
            f"no snapshot {expected.name} yet: look at {actual}, then run with "
            "SEALCHAT_SNAPSHOT_UPDATE=1 to keep it"
        )
    if expected.read_text() != svg:
        actual.write_text(svg)
        raise AssertionError(
            f"{name} looks different: compare {actual} with {expected} (open both in a "
            "browser); if the change is intended, run with SEALCHAT_SNAPSHOT_UPDATE=1"
        )
    actual.unlink(missing_ok=True)
