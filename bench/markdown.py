"""``python -m bench.markdown [results.json]``: the tables of a run as Markdown, for the
README (so the figures written down are the ones measured, not retyped)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.run import RESULTS


def _n(v: float) -> str:
    if v != v:  # NaN
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def tables(data: dict[str, Any]) -> str:
    out = [
        "| scenario | step | target | delivered/s | p50 ms | p99 ms | max ms | server µs/delivery "
        "(usr+sys) | brokers µs | RSS MiB | noise (cores) | tail s | ok |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in data["summary"]["rows"]:
        out.append(
            f"| {r['scenario']} | {r['step']} | {r['target']} | {_n(r['delivered_per_s'])} | "
            f"{_n(r['p50_ms'])} | {_n(r['p99_ms'])} | {_n(r['max_ms'])} | "
            f"{r['cpu_user_us_per_delivery']:.0f}+{r['cpu_sys_us_per_delivery']:.0f} | "
            f"{r['broker_cpu_us_per_delivery']:.0f} | {r['rss_bytes'] / 2**20:.0f} | "
            f"{r['other_cores']:.2f} | {r.get('tail_ms', float('nan')) / 1000:.1f} | "
            f"{'yes' if r['ok'] else 'NO'} ({r['reps']} reps, "
            f"{r['noisy_reps']} noisy) |"
        )
    out += [
        "",
        "| scenario | step | sealchat target | / | median ratio | min-max | reps |",
        "| --- | --- | --- | --- | ---: | --- | ---: |",
    ]
    for r in data["summary"]["ratios"]:
        out.append(
            f"| {r['scenario']} | {r['step']} | {r['sealchat']} | {r['vs']} | "
            f"{r['median']:.3f} | {r['min']:.3f}-{r['max']:.3f} | {r['reps']} |"
        )
    idle = data.get("idle connections (one server process)", [])
    if idle:
        out += [
            "",
            "| idle: target | open | KiB per connection | connects/s |",
            "| --- | ---: | ---: | ---: |",
        ]
        for i in idle:
            out.append(
                f"| {i['target']} | {i['open']} | {i['bytes_per_connection'] / 1024:.1f} | "
                f"{i['connect_per_s']:.0f} |"
            )
    legs = data.get("broker legs alone", [])
    if legs:
        out += [
            "",
            "| broker leg | messages | concurrency | per second | ok |",
            "| --- | ---: | --- | ---: | --- |",
        ]
        for leg in legs:
            rate = leg.get("received_per_s", leg.get("published_per_s", 0.0))
            conc = leg.get("publishers", leg.get("in_flight"))
            out.append(f"| {leg['leg']} | {leg['messages']} | {conc} | {rate:,.0f} | {leg['ok']} |")
    rec = data.get("reconnect (10% of clients killed mid-stream, then caught up)", [])
    if rec:
        out += [
            "",
            "| reconnect: target | rep | sent | killed | filled from history | ok |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rec:
            out.append(
                f"| {r['target']} | {r['rep']} | {r['sent']} | {r['killed']} | "
                f"{r['filled_from_history']} | {r['ok']} {r['problems'] or ''} |"
            )
    m = data["machine"]
    skipped = ", ".join(data.get("skipped", [])) or "nothing"
    out += [
        "",
        f"Machine over the whole run: {m['busy_pct']:.0f}% busy, steal "
        f"{m['steal_pct']:.2f}%, load average at the end {m['load_average_end'][0]:.1f}, "
        f"{m['seconds']:.0f} s. Skipped for time: {skipped}.",
    ]
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    print(tables(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
