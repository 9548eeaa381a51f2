"""The suite's markdown: a header (machine, commit, origin model), the targets met or missed, and every row."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from benchmarks.suite.rows import TARGETS, Judged, Row
from rig.report import MiB, commit, fmt


@dataclass
class RunInfo:
    mode: str
    latency_ms: float
    mbps: float
    machine_start: dict[str, str]
    machine_end: dict[str, str]
    seconds: float
    durations: dict[str, float]
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    origin_core: int | None = None


def _num(value: float, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return ""
    if abs(value) >= 100:
        digits = 0
    return fmt(value, digits)


def _origin(row: Row) -> tuple[str, str]:
    if row.origin is None:
        return "", ""
    o = row.origin
    parts = [f"{o[k]} {k.upper() if k != 'other' else 'other'}" for k in ("get", "head", "list", "other") if o[k]]
    counts = ", ".join(parts) if parts else "0"
    per = f"{row.origin_per_object():.2f} / {row.per_what}" if row.objects else ""
    return counts, per


def render(rows: list[Row], judged: list[Judged], info: RunInfo) -> str:
    m = info.machine_start
    throttle = ("none (--unthrottled)" if not info.latency_ms and not info.mbps else
                f"{info.latency_ms:g} ms before the first byte of every request, each connection's response bytes "
                f"capped at {info.mbps:g} MB/s (10^6 bytes; a token bucket per connection)")
    notes = [
        f"machine: nproc {m['nproc']}, {m['cpu']}, {m['kernel']}, Python {m['python']}; load average at start "
        f"{m['load average']}, at end {info.machine_end['load average']} (the 2 cores are shared: read ratios, "
        "not absolute numbers)",
        f"mode: {info.mode}; the run took {info.seconds:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in info.durations.items()) + ")",
        "origin model: moto's S3 server (benchmarks/suite/moto_server.py: ranged GETs read only their range) "
        f"behind the relay rig.origin.ProxyProcess: {throttle}; it counts every request (GET of object bytes, "
        "HEAD, LIST, other)",
        "s3cache: one worker (4 MiB blocks, s3fifo, metadata TTL 3600 s, default read-ahead and listing TTL) "
        "for the small, large, torch and Triton rows; a 3-worker cluster for the data paths and for the fan-in "
        "(rig.cluster: nginx + 3 workers, 1 MiB blocks); everything on 127.0.0.1, started and stopped by this run",
        "ratio = value / reference, both measured in this run; CPU = user + system time of the s3cache worker(s) "
        "serving the row (/proc/PID/stat); peak RSS = largest VmHWM among them, reset before the row",
    ]
    lines = ["# Never slower than the origin: s3cache next to what a user would do instead", "",
             f"- commit: {commit()}; date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", *[f"- {n}" for n in notes], ""]
    if info.failures:
        lines += ["## Workloads that failed", ""]
        lines += [f"- **{name}**: `{error}`" for name, error in info.failures]
        lines.append("")
    lines += ["## Targets", "", "| target | row | measured | |", "|---|---|---|---|"]
    seen = set()
    for j in judged:
        seen.add(j.target.text)
        lines.append(f"| {j.target.text} | {j.row.workload}: {j.row.case} | {j.measured} | "
                     f"{'met' if j.met else '**missed**'} |")
    for target in TARGETS:
        if target.text not in seen:
            why = ("full mode only" if target.full_only and info.mode == "quick" else
                   "failed (see above)" if info.failures else "not run (--only)")
            lines.append(f"| {target.text} | | {why} | |")
    met = sum(j.met for j in judged)
    lines += ["", f"{met} of {len(judged)} judged rows met their target.", ""]
    if info.plots:
        lines += [f"![{name}]({name})" for name in info.plots]
        lines.append("")
    lines += ["## Rows", "",
              "| workload | case | value | unit | reference | ref. value | ratio | target | p50 ms | p90 ms | p99 ms "
              "| p50 vs ref. | origin requests | origin per | CPU ms/req | CPU ms/MiB | peak RSS MiB | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        p = row.p()
        counts, per = _origin(row)
        ratio = "" if math.isnan(row.ratio) else f"{row.ratio:.2f}x"
        p50_ratio = "" if math.isnan(row.p50_ratio) else f"{row.p50_ratio:.2f}x"
        verdict = ", ".join(v if v == "met" else f"**{v}**" for v in row.verdicts)
        rss = "" if row.peak_rss is None else f"{row.peak_rss / MiB:.0f}"
        lines.append(
            f"| {row.workload} | {row.case} | {_num(row.value, 2)} | {row.unit} | {row.reference} | "
            f"{_num(row.reference_value, 2)} | {ratio} | {verdict} | {_num(p['p50'], 2)} | {_num(p['p90'], 2)} | "
            f"{_num(p['p99'], 2)} | {p50_ratio} | {counts} | {per} | {_num(row.cpu_ms_per_request, 2)} | "
            f"{_num(row.cpu_ms_per_mib, 2)} | {rss} | {row.note} |")
    if info.skipped:
        lines += ["", "Not run in this mode: " + ", ".join(info.skipped) + "."]
    return "\n".join(lines) + "\n"
