"""A row of the suite's table, and the targets of "never slower than the origin" judged on the rows.

Every row is one measurement next to its reference measured in the same run (what a user would do instead):
the value, the reference's value, their ratio (value / reference), latency percentiles where there are
latencies, the requests the origin received during the row (by kind, and per object or block), and the
s3cache worker's CPU (per request and per MiB, from /proc/PID/stat) and peak RSS (VmHWM) over the row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.loadgen import percentiles
from rig.report import MiB, ProcessMeter


@dataclass
class Row:
    workload: str  # "small 4KiB", "large 256MiB", ...
    case: str  # what was measured, e.g. "s3cache cold, boto3 pool"
    key: str  # what targets find it by, e.g. "small-cold"
    unit: str
    value: float
    reference: str = ""  # what it is compared with
    reference_value: float = math.nan
    latencies_s: list[float] = field(default_factory=list)
    reference_latencies_s: list[float] = field(default_factory=list)
    quantiles_ms: dict[str, float] | None = None  # p50/p90/p99 a client reported itself (wrk), else from latencies_s
    origin: dict[str, int] | None = None  # origin requests during the row, by kind (rig.origin.CountingProxy.tally)
    objects: int = 0  # what origin requests are counted per: objects read (or blocks, per_what)
    per_what: str = "object"
    requests: int = 0  # client requests, for CPU per request
    mib: float = 0.0  # MiB the client received, for CPU per MiB
    cpu_s: float | None = None  # worker CPU over the row (every worker serving it)
    peak_rss: int | None = None  # largest worker VmHWM over the row
    note: str = ""
    verdicts: list[str] = field(default_factory=list)  # "met" / "missed", one per target judging the row

    @property
    def ratio(self) -> float:
        return self.value / self.reference_value if self.reference_value else math.nan

    def p(self) -> dict[str, float]:
        """p50/p90/p99 (and max) in ms; NaN where the row has no latencies."""
        return self.quantiles_ms if self.quantiles_ms is not None else percentiles(self.latencies_s)

    @property
    def p50_ratio(self) -> float:
        if not self.latencies_s or not self.reference_latencies_s:
            return math.nan
        return percentiles(self.latencies_s)["p50"] / percentiles(self.reference_latencies_s)["p50"]

    def metered(self, meter: ProcessMeter) -> Row:
        self.cpu_s, self.peak_rss = meter.cpu_s, meter.peak_rss
        return self

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.requests if self.cpu_s is not None and self.requests else math.nan

    @property
    def cpu_ms_per_mib(self) -> float:
        return self.cpu_s * 1000 / self.mib if self.cpu_s is not None and self.mib else math.nan

    def origin_per_object(self) -> float:
        return self.origin["total"] / self.objects if self.origin and self.objects else math.nan


@dataclass
class Judged:
    target: Target
    row: Row
    measured: str
    met: bool


@dataclass
class Target:
    """A requirement of the issue, judged on each row whose key is in keys."""

    text: str
    keys: tuple[str, ...]
    judge: Callable[[Row], tuple[str, bool]]
    margin: Callable[[Row], float] | None = None  # measured / required (> 1 is met), for the plot
    full_only: bool = False

    def on(self, rows: list[Row]) -> list[Judged]:
        found = []
        for row in rows:
            if row.key in self.keys and not math.isnan(row.value):
                measured, met = self.judge(row)
                found.append(Judged(self, row, measured, met))
        return found


def at_least(required: float) -> Callable[[Row], tuple[str, bool]]:
    return lambda row: (f"{row.ratio:.2f}x", row.ratio >= required)


def at_most(required: float) -> Callable[[Row], tuple[str, bool]]:
    return lambda row: (f"{row.ratio:.2f}x", row.ratio <= required)


def _cold_small(row: Row) -> tuple[str, bool]:
    return f"{row.ratio:.2f}x, p50 {row.p50_ratio:.2f}x", row.ratio >= 1.0 and row.p50_ratio <= 1.1


def _no_origin(row: Row) -> tuple[str, bool]:
    assert row.origin is not None
    o = row.origin
    return (f"{o['total']} origin requests ({o['get']} GET, {o['head']} HEAD, {o['list']} LIST, {o['other']} other)",
            o["total"] == 0)


def _one_per_block(row: Row) -> tuple[str, bool]:
    assert row.origin is not None
    per = row.origin["get"] / row.objects if row.objects else math.nan
    return f"{per:.2f} object GETs per block ({row.origin['get']} for {row.objects})", per == 1.0


def _rss_under(limit_mib: float) -> Callable[[Row], tuple[str, bool]]:
    def judge(row: Row) -> tuple[str, bool]:
        peak = (row.peak_rss or 0) / MiB
        return f"{peak:.0f} MiB", 0 < peak < limit_mib
    return judge


def _margin_at_least(required: float) -> Callable[[Row], float]:
    return lambda row: row.ratio / required


def _margin_at_most(required: float) -> Callable[[Row], float]:
    return lambda row: required / row.ratio if row.ratio else math.inf


TARGETS = [
    Target("cold small >= 1.0x direct with p50 <= 1.1x", ("small-cold",), _cold_small,
           lambda row: min(row.ratio, 1.1 / row.p50_ratio)),
    Target("one cold GetObject of a large object >= 1.0x the transfer manager direct", ("large-cold-get",),
           at_least(1.0), _margin_at_least(1.0)),
    Target("transfer manager through s3cache >= 1.0x it direct", ("large-cold-tm", "large-warm-tm"), at_least(1.0),
           _margin_at_least(1.0)),
    Target("CPU per cold MiB <= 2x per warm MiB", ("large-cpu",), at_most(2.0), _margin_at_most(2.0)),
    Target("proxied 64 MiB >= 0.7x local", ("paths-proxy-64MiB",), at_least(0.7), _margin_at_least(0.7)),
    Target("proxied 4 KiB >= 0.6x local", ("paths-proxy-4KiB",), at_least(0.6), _margin_at_least(0.6)),
    Target("warm small >= 10x throttled origin", ("small-warm-origin",), at_least(10.0), _margin_at_least(10.0)),
    Target("warm 4 KiB >= 0.4x nginx", ("small-warm-nginx-4KiB",), at_least(0.4), _margin_at_least(0.4)),
    Target("torch epoch cold >= 1.0x direct", ("torch-cold",), at_least(1.0), _margin_at_least(1.0)),
    Target("torch epoch warm >= 5x direct", ("torch-warm",), at_least(5.0), _margin_at_least(5.0)),
    Target("Triton warm load with no origin request", ("triton-warm",), _no_origin),
    Target("64 concurrent cold readers across 3 workers: 1 origin request per block", ("fanin",), _one_per_block),
    Target("peak RSS < 250 MiB streaming a cold 2 GiB object with the largest read-ahead", ("rss",),
           _rss_under(250.0), full_only=True),
]


def judge(rows: list[Row]) -> list[Judged]:
    """Every target on every row it applies to; each row's verdicts are set."""
    judged = [j for target in TARGETS for j in target.on(rows)]
    for j in judged:
        j.row.verdicts.append("met" if j.met else "missed")
    return judged
