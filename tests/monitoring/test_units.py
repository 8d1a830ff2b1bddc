"""Small pieces on their own: consumer lag, and the Zabbix helper's parsing and quantiles."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

from backend.common.metrics import Lag
from tests.monitoring.zabbix import SCRIPT


def helper() -> Any:
    spec = importlib.util.spec_from_file_location("sealchat_metric", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lag_grows_while_stuck_and_falls_to_zero_when_caught_up():
    clock = Clock()
    lag = Lag(clock=clock)
    assert lag.seconds() == 0
    lag.begin(1, produced_at=990.0)
    assert lag.seconds() == 10
    clock.now += 50  # stuck on that message
    assert lag.seconds() == 60
    lag.end(1)
    assert lag.seconds() == 60  # just finished: that is how far behind it was
    clock.now += Lag.IDLE_AFTER + 0.1  # nothing more came: caught up
    assert lag.seconds() == 0


def test_the_helper_reads_labels_and_escapes():
    m = helper()
    text = (
        "# HELP x_total things\n# TYPE x_total counter\n"
        'x_total{result="fail",reason="a \\"quoted\\", comma"} 3.0\n'
        'x_total{result="success",reason=""} 4.0\n'
        "y NaN\n"
    )
    samples = m.parse(text)
    assert samples[0] == ("x_total", {"result": "fail", "reason": 'a "quoted", comma'}, 3.0)
    assert math.isnan(samples[2][2])
    assert m._selected(samples, "x_total", {"result": "success"}) == [
        ({"result": "success", "reason": ""}, 4.0)
    ]


def test_the_helper_reads_only_addresses_of_this_host():
    m = helper()
    assert m.is_own_address("127.0.0.1") and m.is_own_address("localhost")
    assert m.is_own_address("127.0.0.2")  # not in the name list: bindable, so this host's
    assert not m.is_own_address("192.0.2.1")  # TEST-NET-1: nobody's address here
    assert not m.is_own_address("0.0.0.0") and not m.is_own_address("sealchat.invalid")
    assert not m.is_own_address(None)


def test_the_helper_quantile_interpolates_like_prometheus():
    m = helper()
    # 100 observations: 50 under 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
    cumulative = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert m._quantile(0.5, cumulative) == 0.1
    assert math.isclose(m._quantile(0.7, cumulative), 0.1 + 0.4 * (20 / 40))
    assert math.isclose(m._quantile(0.99, cumulative), 0.5 + 0.5 * (9 / 10))
    assert m._quantile(0.99, {0.1: 0.0, math.inf: 0.0}) == 0  # nothing observed
    assert m._quantile(0.99, {1.0: 0.0, math.inf: 5.0}) == 1.0  # all beyond the last bound
