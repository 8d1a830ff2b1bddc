"""Medians across repetitions, per-repetition ratios, the printed table and the JSON file."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

SEALCHAT = ("sealchat-embedded", "sealchat-cluster")
REFERENCES = ("baseline", "socketio")
FIELDS = (
    "delivered_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "cpu_user_us_per_delivery",
    "cpu_sys_us_per_delivery",
    "broker_cpu_us_per_delivery",
    "rss_bytes",
    "loadgen_cores",
    "other_cores",
    "steal_pct",
    "tail_ms",
)


def _key(run: dict[str, Any]) -> tuple[str, str]:
    return run["scenario"], run["step"]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per (scenario, step, target) and median/min/max of per-rep ratios."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(*_key(run), run["target"])].append(run)
    rows = []
    for (scenario, step, target), rs in groups.items():
        row: dict[str, Any] = {
            "scenario": scenario,
            "step": step,
            "target": target,
            "reps": len(rs),
        }
        for f in FIELDS:
            row[f] = statistics.median(r[f] for r in rs)
        row["ok"] = all(r["ok"] for r in rs)
        row["noisy_reps"] = sum(r["noisy"] for r in rs)
        row["loadgen_bound_reps"] = sum(r["loadgen_bound"] for r in rs)
        row["unsettled_reps"] = sum(not r["settled"] for r in rs)
        rows.append(row)
    by_rep: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    for run in runs:
        by_rep[(*_key(run), run["rep"])][run["target"]] = run["delivered_per_s"]
    ratios: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for (scenario, step, _), values in by_rep.items():
        for s in SEALCHAT:
            for ref in REFERENCES:
                if s in values and ref in values and values[ref] > 0:
                    ratios[(scenario, step, s, ref)].append(values[s] / values[ref])
    ratio_rows = [
        {
            "scenario": scenario,
            "step": step,
            "sealchat": s,
            "vs": ref,
            "median": statistics.median(vs),
            "min": min(vs),
            "max": max(vs),
            "reps": len(vs),
        }
        for (scenario, step, s, ref), vs in ratios.items()
    ]
    return {"rows": rows, "ratios": ratio_rows}


def _fmt(v: float, digits: int = 1) -> str:
    if v != v:  # NaN
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def table(summary: dict[str, Any], extra: dict[str, Any]) -> str:
    head = (
        f"{'scenario':<10} {'step':>9} {'target':<18} {'deliv/s':>9} {'p50ms':>7} {'p99ms':>8} "
        f"{'maxms':>8} {'usr+sys µs':>11} {'brk µs':>7} {'RSS MB':>7} {'gen':>5} {'noise':>5} "
        f"{'tail':>5} ok"
    )
    lines = [head, "-" * len(head)]
    for r in summary["rows"]:
        cpu = f"{r['cpu_user_us_per_delivery']:.1f}+{r['cpu_sys_us_per_delivery']:.1f}"
        flags = ""
        if r["noisy_reps"]:
            flags += f" noisy x{r['noisy_reps']}"
        if r["loadgen_bound_reps"]:
            flags += f" gen-bound x{r['loadgen_bound_reps']}"
        if r["unsettled_reps"]:
            flags += f" unsettled x{r['unsettled_reps']}"
        lines.append(
            f"{r['scenario']:<10} {r['step']:>9} {r['target']:<18} "
            f"{_fmt(r['delivered_per_s'], 0):>9} {_fmt(r['p50_ms']):>7} {_fmt(r['p99_ms']):>8} "
            f"{_fmt(r['max_ms']):>8} {cpu:>11} {_fmt(r['broker_cpu_us_per_delivery']):>7} "
            f"{r['rss_bytes'] / 2**20:>7.0f} {r['loadgen_cores']:>5.2f} "
            f"{r['other_cores']:>5.2f} {r['tail_ms'] / 1000:>5.1f} "
            f"{'yes' if r['ok'] else 'NO'}{flags}"
        )
    lines += ["", "ratios of delivered/s, median of per-repetition ratios (min-max):"]
    for r in summary["ratios"]:
        lines.append(
            f"  {r['scenario']:<10} {r['step']:>9} {r['sealchat']:<18} / {r['vs']:<9} "
            f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f}, {r['reps']} reps)"
        )
    for title, items in extra.items():
        lines += ["", f"{title}:"]
        for item in items:
            lines.append("  " + ", ".join(f"{k}={_short(v)}" for k, v in item.items()))
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return _fmt(v)
    return str(v)


def write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
