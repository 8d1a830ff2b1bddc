"""The lab test runs only when asked for (``-m lab``, as ``make lab-test`` does): it needs
root, boots seven containers and takes many minutes, so the default run deselects it."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "lab" in (config.getoption("markexpr") or ""):
        return
    lab = [i for i in items if i.get_closest_marker("lab")]
    if lab:
        config.hook.pytest_deselected(items=lab)
        items[:] = [i for i in items if not i.get_closest_marker("lab")]
