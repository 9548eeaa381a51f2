"""``python -m benchmarks run [--quick]``: every workload of "never slower than the origin", side by side in one run.

It starts the origin model (moto behind a relay adding a first-byte latency and a per-connection rate cap),
one s3cache worker, nginx serving the same bytes, and the clusters the cluster workloads need, all on
127.0.0.1; runs each workload next to its reference; and writes a dated markdown table and PNG plots to
benchmarks/results/never_slower-<date>.{md,-targets.png,-latency.png,-workloads.png}. A workload that fails
is reported as failed and the run goes on; the exit status is 1 when one did.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable

from benchmarks.suite import fanin, large, paths, plots, rss, small, torch_epoch, triton
from benchmarks.suite.context import FULL, QUICK, Context
from benchmarks.suite.render import RunInfo, render
from benchmarks.suite.rows import Row, judge
from benchmarks.suite.stage import Stage, StaticNginx
from rig.processes import ROOT, sigterm_raises
from rig.report import machine

WORKLOADS: dict[str, Callable[[Context], list[Row]]] = {
    "small": small.run, "large": large.run, "paths": paths.run, "torch": torch_epoch.run, "triton": triton.run,
    "fanin": fanin.run, "rss": rss.run,
}
NAME = "never_slower"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller counts and sizes (a few minutes)")
    parser.add_argument("--origin-latency-ms", type=float, default=20.0,
                        help="first-byte latency the relay adds to every origin request (default 20)")
    parser.add_argument("--origin-mbps", type=float, default=80.0,
                        help="cap on each origin connection's response rate, MB/s of 10^6 bytes (default 80)")
    parser.add_argument("--unthrottled", action="store_true", help="an origin with neither latency nor rate cap")
    parser.add_argument("--origin-core", type=int, default=None, metavar="N",
                        help="run the origin (moto and the relay) on CPU N alone and everything else on the other "
                        "cores, as a remote origin spends none of the cache's CPU (default: all share every core)")
    parser.add_argument("--only", default="", help=f"comma-separated workloads to run (of {','.join(WORKLOADS)})")


def main(args: argparse.Namespace) -> int:
    sigterm_raises()
    profile = QUICK if args.quick else FULL
    latency_ms, mbps = (0.0, 0.0) if args.unthrottled else (args.origin_latency_ms, args.origin_mbps)
    selected = [name.strip() for name in args.only.split(",") if name.strip()] or list(WORKLOADS)
    unknown = set(selected) - set(WORKLOADS)
    if unknown:
        print(f"unknown workloads: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    info = RunInfo(profile.name, latency_ms, mbps, machine(), {}, 0.0, {}, origin_core=args.origin_core)
    rows: list[Row] = []
    with Stage(latency_s=latency_ms / 1000, rate_bytes_s=mbps * 1e6, origin_core=args.origin_core) as stage:
        nginx = StaticNginx()
        try:
            nginx.start()
            ctx = Context(profile, stage, stage.worker_with(), nginx, latency_ms, mbps)
            for name in selected:
                if name == "rss" and not profile.rss_bytes:
                    info.skipped.append("peak RSS streaming a cold 2 GiB object (full mode)")
                    continue
                started = time.perf_counter()
                print(f"[{time.perf_counter() - began:6.0f} s] {name} ...", file=sys.stderr, flush=True)
                try:
                    found = WORKLOADS[name](ctx)
                except Exception as error:  # noqa: BLE001 - one failed workload is reported, the others still run
                    traceback.print_exc()
                    tail = "\n".join(ctx.worker.log().splitlines()[-40:])
                    print(f"the worker's log ends:\n{tail}", file=sys.stderr)
                    info.failures.append((name, f"{type(error).__name__}: {error}"))
                    found = []
                rows += found
                info.durations[name] = time.perf_counter() - started
                for row in found:
                    print(f"    {row.workload} | {row.case}: {row.value:,.2f} {row.unit}"
                          + (f" ({row.ratio:.2f}x {row.reference})" if row.reference else ""), file=sys.stderr)
        finally:
            nginx.stop()
    judged = judge(rows)
    info.machine_end = machine()
    info.seconds = time.perf_counter() - began
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    title = f"s3cache vs the origin ({profile.name}, {stamp})"
    for suffix, draw in (("targets", lambda p: plots.targets(judged, p, title)),
                         ("latency", lambda p: plots.latency(rows, p, title)),
                         ("workloads", lambda p: plots.workloads(rows, p, title))):
        png = out / f"{NAME}-{stamp}-{suffix}.png"
        if draw(png):
            info.plots.append(png.name)
    text = render(rows, judged, info)
    report = out / f"{NAME}-{stamp}.md"
    report.write_text(text)
    print(text)
    print(f"written to {report.relative_to(ROOT)} and {len(info.plots)} plots beside it")
    return 1 if info.failures else 0
