#!/usr/bin/env python3
"""Zabbix agent helper: one number from a sealchat metrics endpoint on this host.

Why a script and not ``curl | awk``: a key needs label matching (``result=fail``), sums over
label sets, and latency quantiles over the last polling interval (a windowed p99 from the
histogram's buckets, which needs the previous reading); it also refuses any URL whose host is
not loopback or one of this host's own addresses (one it can bind: the services of a cluster
listen on the private address), so an item key cannot turn the agent into a proxy. Standard
library only: it runs on the node's system Python 3.9+ as the ``zabbix`` user, without the
sealchat venv.

    sealchat_metric.py get URL NAME [LABEL=VALUE ...]        sum of the matching samples
    sealchat_metric.py quantile URL HISTOGRAM Q [LABEL=VALUE ...]
                                                              Q-quantile (0.99) in seconds of
                                                              the observations since the last
                                                              call for the same key (0: none)
    sealchat_metric.py cert-days PATH                         days until a PEM certificate
                                                              expires (negative: expired)

On any failure it prints one line starting with ``ZBX_NOTSUPPORTED:`` and the reason; a
numeric item that receives it becomes unsupported and shows that reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 2.5  # the agent's own Timeout is 3 s by default
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


class Unsupported(Exception):
    """The item cannot be computed; the message says why."""


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition → (sample name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise Unsupported(f"cannot read metrics line {line[:60]!r}")
        name, raw_labels, raw_value = match.groups()
        labels = {k: _unescape(v) for k, v in _LABEL.findall(raw_labels or "")}
        samples.append((name, labels, float(raw_value)))
    return samples


def is_own_address(host: str | None) -> bool:
    """Loopback, or an IP address of this host: one a socket can bind (no DNS is asked)."""
    if host in LOOPBACK:
        return True
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if address.is_unspecified or address.is_multicast:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def fetch(url: str) -> list[tuple[str, dict[str, str], float]]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not is_own_address(parts.hostname):
        raise Unsupported(
            "only http:// URLs on loopback or this host's own addresses are read "
            "(127.0.0.1, ::1, localhost, a local IP address)"
        )
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as r:  # noqa: S310 (checked)
            return parse(r.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise Unsupported(f"{url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unsupported(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None


def _matchers(args: list[str]) -> dict[str, str]:
    out = {}
    for arg in args:
        if not arg:
            continue  # an unused $N of the UserParameter
        key, sep, value = arg.partition("=")
        if not sep:
            raise Unsupported(f"label filter {arg!r} is not LABEL=VALUE")
        out[key] = value
    return out


def _selected(samples, name, matchers):
    return [
        (labels, value)
        for sample, labels, value in samples
        if sample == name and all(labels.get(k) == v for k, v in matchers.items())
    ]


def get(url: str, name: str, filters: list[str]) -> float:
    samples = fetch(url)
    chosen = _selected(samples, name, _matchers(filters))
    if not chosen:
        if name not in {sample for sample, _, _ in samples}:
            raise Unsupported(f"{url} has no metric {name}")
        return 0.0  # the metric exists; no label set matches yet (e.g. no failure so far)
    total = sum(value for _, value in chosen)
    if math.isnan(total):
        raise Unsupported(f"{name} is unknown right now (NaN)")
    return total


def _buckets(samples, histogram: str, matchers: dict[str, str]) -> dict[float, float]:
    """Cumulative counts by upper bound, summed over every matching label set."""
    out: dict[float, float] = {}
    for labels, value in _selected(samples, histogram + "_bucket", matchers):
        bound = float(labels["le"])
        out[bound] = out.get(bound, 0.0) + value
    return out


def _quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return 0.0
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound, as Prometheus
            width = count - lower_count
            fraction = 0.0 if width <= 0 else (rank - lower_count) / width
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


def _state_dir() -> Path:
    path = Path(os.environ.get("SEALCHAT_METRIC_STATE") or Path(tempfile.gettempdir()))
    path = path / f"sealchat-zabbix-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def quantile(url: str, histogram: str, q: str, filters: list[str]) -> float:
    level = float(q)
    if not 0 < level < 1:
        raise Unsupported("Q must be between 0 and 1, e.g. 0.99")
    matchers = _matchers(filters)
    now = _buckets(fetch(url), histogram, matchers)
    if not now:
        raise Unsupported(f"{url} has no histogram {histogram}")
    key = hashlib.sha256(json.dumps([url, histogram, sorted(matchers.items())]).encode())
    state = _state_dir() / (key.hexdigest()[:32] + ".json")
    try:
        before = {float(k): v for k, v in json.loads(state.read_text()).items()}
    except (OSError, ValueError):
        before = {}
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in now.items()}))
    tmp.replace(state)
    window = {b: now[b] - before.get(b, 0.0) for b in now}
    if any(v < 0 for v in window.values()):  # the service restarted: its counters began again
        window = now
    return _quantile(level, window)


def cert_days(path: str) -> float:
    try:
        out = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            ["openssl", "x509", "-noout", "-enddate", "-in", path],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        raise Unsupported(f"cannot read the certificate {path}") from None
    raw = out.strip().partition("=")[2]
    try:
        ends = datetime.strptime(raw, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    except ValueError:
        raise Unsupported(f"unexpected notAfter {raw!r} in {path}") from None
    return (ends.timestamp() - time.time()) / 86400


def main(argv: list[str]) -> int:
    try:
        if len(argv) >= 3 and argv[0] == "get":
            value = get(argv[1], argv[2], argv[3:])
        elif len(argv) >= 4 and argv[0] == "quantile":
            value = quantile(argv[1], argv[2], argv[3], argv[4:])
        elif len(argv) == 2 and argv[0] == "cert-days":
            value = cert_days(argv[1])
        else:
            raise Unsupported(
                "usage: get URL NAME [L=V ...] | quantile URL HISTOGRAM Q [L=V ...] | "
                "cert-days PATH"
            )
    except Unsupported as exc:
        print(f"ZBX_NOTSUPPORTED: {exc}")
        return 1
    print(int(value) if value.is_integer() else round(value, 6))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
