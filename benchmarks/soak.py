"""The soak: a locust scenario mix for many minutes against three workers behind nginx over a remote-looking origin,
sampling every few seconds the error rate, p50/p99 and each worker's RSS and open file descriptors.

The stage is the deployed shape on one machine, every process on 127.0.0.1 and stopped by its PID at the end:
moto's server (``benchmarks/suite/moto_server.py``: ranged GETs read only their range) behind the relay of
``rig.origin`` (a first-byte latency on every request and a per-connection rate cap: ``--latency-ms``, ``--mbps``),
a real redis-server, three workers (1 MiB blocks, 512 MiB of cache each) and nginx with the shipped configuration
(``rig.cluster``). The load (``benchmarks/soak_load.py``, locust run headless in a process of its own) mixes
Zipf-hot 16 KiB GETs, 1 MiB ranged reads of 64 MiB objects, listings, and a few PUTs and DELETEs.

At the end it writes ``benchmarks/results/soak-<date>.md`` (machine, commit, settings, the totals, RSS and fds at
start, after warm-up and at the end, and a row every 30 s) and ``soak-<date>.png`` (requests and errors, p50/p99,
RSS and fds over time).

    python benchmarks/soak.py [--minutes 10] [--users 16] [--latency-ms 20] [--mbps 80]

It is made to run for hours (``--minutes 480``): memory is sampled, never accumulated per request, and the
workers' caches are bounded, so a long run costs only its access logs on disk.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
import matplotlib
from botocore.config import Config

from benchmarks.soak_objects import BUCKET, SMALL_BYTES, large_key, small_key
from benchmarks.suite.moto_server import RangedMoto
from rig.cluster import WORKER_IDS, Cluster
from rig.origin import ProxyProcess
from rig.processes import ROOT, scrape, sigterm_raises
from rig.redis import RedisServer
from rig.report import MiB, header, parse_size, proc_status

matplotlib.use("Agg")
import matplotlib.pyplot as plt

WARM_UP_S = 60.0  # RSS "after warm-up" is read this long into the run
TABLE_EVERY_S = 30.0


@dataclass
class Sample:
    elapsed_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    rss: dict[str, int]  # worker id -> bytes
    fds: dict[str, int]
    blocks: dict[str, int]  # blocks each worker's cache holds: its index (and RSS) grows with them
    failures: dict[str, int]


def workers_now(rig: Cluster) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Each worker's resident memory (VmRSS) and open file descriptors, from /proc/<pid>, and the blocks it holds."""
    rss, fds, blocks = {}, {}, {}
    for wid, worker in rig.workers.items():
        assert worker.proc is not None
        rss[wid] = proc_status(worker.proc.pid)["VmRSS"]
        fds[wid] = len(os.listdir(f"/proc/{worker.proc.pid}/fd"))
        blocks[wid] = int(scrape(worker.url)[("s3cache_cache_blocks", ())])
    return rss, fds, blocks


def seed(url: str, small: int, large: int, large_bytes: int) -> None:
    """The objects, put at moto directly (not through the relay), 8 at a time."""
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="soak",
                      aws_secret_access_key="soak", config=Config(max_pool_connections=8))
    s3.create_bucket(Bucket=BUCKET)
    jobs = [(small_key(i), SMALL_BYTES) for i in range(small)] + [(large_key(i), large_bytes) for i in range(large)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: s3.put_object(Bucket=BUCKET, Key=job[0], Body=os.urandom(job[1])), jobs))


def run_load(rig: Cluster, args: argparse.Namespace, large_bytes: int) -> tuple[list[Sample], dict[str, Any]]:
    """The locust process, its window statistics read as they come, each joined with the workers' /proc then."""
    cmd = [sys.executable, "-m", "benchmarks.soak_load", "--host", rig.url, "--seconds", str(args.minutes * 60),
           "--users", str(args.users), "--sample-s", str(args.sample_s), "--small", str(args.small),
           "--large", str(args.large), "--large-bytes", str(large_bytes)]
    started = time.time()
    rss, fds, blocks = workers_now(rig)
    samples = [Sample(0.0, 0, 0, 0.0, 0.0, rss, fds, blocks, {})]
    overall: dict[str, Any] = {}
    load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert load.stdout is not None
        for line in load.stdout:
            window = json.loads(line)
            if window.get("final"):
                overall = window
                continue
            rss, fds, blocks = workers_now(rig)
            samples.append(Sample(window["time"] - started, window["requests"], window["errors"], window["p50_ms"],
                                  window["p99_ms"], rss, fds, blocks, window["failures"]))
            print(f"{samples[-1].elapsed_s:7.0f} s  {window['requests']:6d} requests  {window['errors']:3d} errors  "
                  f"p50 {window['p50_ms']:6.1f} ms  p99 {window['p99_ms']:7.1f} ms  RSS MiB "
                  f"{' '.join(f'{v / MiB:.0f}' for v in rss.values())}  fds {' '.join(map(str, fds.values()))}  "
                  f"blocks {' '.join(map(str, blocks.values()))}",
                  flush=True)
    finally:
        load.terminate()
        load.wait(timeout=30)
    return samples, overall


def at(samples: list[Sample], elapsed_s: float) -> Sample:
    return min(samples, key=lambda s: abs(s.elapsed_s - elapsed_s))


def _mib(values: dict[str, int]) -> str:
    return " / ".join(f"{values[w] / MiB:.1f}" for w in WORKER_IDS)


def _count(values: dict[str, int]) -> str:
    return " / ".join(str(values[w]) for w in WORKER_IDS)


def report(samples: list[Sample], overall: dict[str, Any], args: argparse.Namespace, plot: Path,
           heading: list[str]) -> str:
    start, end = samples[0], samples[-1]
    warm, half = at(samples, WARM_UP_S), at(samples, end.elapsed_s / 2)
    failures: dict[str, int] = {}
    for sample in samples:
        for kind, count in sample.failures.items():
            failures[kind] = failures.get(kind, 0) + count
    requests, errors = overall.get("requests", 0), overall.get("errors", 0)
    lines = [*heading]
    lines[-1:-1] = [  # before header()'s closing blank line
        f"- {args.minutes:g} minutes, {args.users} locust users (no wait), relay {args.latency_ms:g} ms first byte and "
        f"{args.mbps:g} MB/s per connection; {args.small} small objects of 16 KiB (Zipf s=1.1), {args.large} of "
        f"{args.large_size}; mix 70 small GET / 20 1 MiB ranged GET / 6 LIST / 3 PUT 64 KiB / 1 DELETE",
        "- workers: 1 MiB blocks, 512 MiB cache each, one Redis, nginx with the shipped configuration",
        f"- command: python benchmarks/soak.py {' '.join(sys.argv[1:])}".rstrip()]
    lines += [
        "| requests | errors | error rate | p50 | p99 | req/s |", "|---|---|---|---|---|---|",
        f"| {requests} | {errors} | {errors / requests if requests else 0:.4%} | {overall.get('p50_ms', 0):.1f} ms | "
        f"{overall.get('p99_ms', 0):.1f} ms | {requests / end.elapsed_s if end.elapsed_s else 0:.0f} |", "",
        "| worker RSS MiB (w0 / w1 / w2) | open fds (w0 / w1 / w2) | cached blocks (w0 / w1 / w2) | at |",
        "|---|---|---|---|",
        f"| {_mib(start.rss)} | {_count(start.fds)} | {_count(start.blocks)} | start |",
        f"| {_mib(warm.rss)} | {_count(warm.fds)} | {_count(warm.blocks)} | {warm.elapsed_s:.0f} s |",
        f"| {_mib(half.rss)} | {_count(half.fds)} | {_count(half.blocks)} | {half.elapsed_s:.0f} s |",
        f"| {_mib(end.rss)} | {_count(end.fds)} | {_count(end.blocks)} | {end.elapsed_s:.0f} s (end) |", "",
        f"RSS growth over the second half: {_mib({w: end.rss[w] - half.rss[w] for w in WORKER_IDS})} MiB; "
        f"since warm-up: {_mib({w: end.rss[w] - warm.rss[w] for w in WORKER_IDS})} MiB.", "",
        "Failures by kind: " + (", ".join(f"{k}: {v}" for k, v in sorted(failures.items())) or "none"), "",
        f"![soak]({plot.name})", "",
        "| elapsed | requests | errors | p50 ms | p99 ms | RSS MiB w0 / w1 / w2 | fds w0 / w1 / w2 | blocks w0 / w1 / w2 |",
        "|---|---|---|---|---|---|---|---|"]
    shown = -TABLE_EVERY_S
    for sample in samples[1:]:
        if sample.elapsed_s - shown >= TABLE_EVERY_S - args.sample_s / 2 or sample is end:
            shown = sample.elapsed_s
            lines.append(f"| {sample.elapsed_s:.0f} s | {sample.requests} | {sample.errors} | {sample.p50_ms:.1f} | "
                         f"{sample.p99_ms:.1f} | {_mib(sample.rss)} | {_count(sample.fds)} | {_count(sample.blocks)} |")
    return "\n".join(lines) + "\n"


def draw(samples: list[Sample], sample_s: float, path: Path, title: str) -> None:
    minutes = [s.elapsed_s / 60 for s in samples[1:]]
    fig, (rate, latency, memory) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    rate.plot(minutes, [s.requests / sample_s for s in samples[1:]], label="requests/s")
    errors = rate.twinx()
    errors.plot(minutes, [s.errors / sample_s for s in samples[1:]], color="#c62828", label="errors/s")
    errors.set_ylabel("errors/s", color="#c62828")
    errors.set_ylim(bottom=0, top=max(1.0, *(s.errors / sample_s for s in samples[1:])))
    rate.set_ylabel("requests/s")
    rate.set_ylim(bottom=0)
    latency.plot(minutes, [s.p50_ms for s in samples[1:]], label="p50")
    latency.plot(minutes, [s.p99_ms for s in samples[1:]], label="p99")
    latency.set_yscale("log")
    latency.set_ylabel("latency, ms (each window)")
    latency.legend(loc="upper right")
    fds = memory.twinx()
    for wid in WORKER_IDS:
        line, = memory.plot(minutes, [s.rss[wid] / MiB for s in samples[1:]], label=f"{wid} RSS")
        fds.plot(minutes, [s.fds[wid] for s in samples[1:]], linestyle=":", color=line.get_color(), label=f"{wid} fds")
    memory.set_ylabel("RSS, MiB")
    memory.set_ylim(bottom=0)
    fds.set_ylabel("open fds (dotted)")
    fds.set_ylim(bottom=0)
    memory.legend(loc="lower right", fontsize=8)
    memory.set_xlabel("minutes")
    rate.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10; hours work)")
    parser.add_argument("--users", type=int, default=16, help="locust users, each with no wait (default 16)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the relay's first-byte latency (default 20)")
    parser.add_argument("--mbps", type=float, default=80.0, help="the relay's per-connection cap, MB/s (default 80)")
    parser.add_argument("--small", type=int, default=2000, help="16 KiB objects (default 2000)")
    parser.add_argument("--large", type=int, default=4, help="large objects (default 4)")
    parser.add_argument("--large-size", default="64M", help="size of each large object (default 64M)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="sampling period (default 5 s)")
    args = parser.parse_args(argv)
    sigterm_raises()
    large_bytes = parse_size(args.large_size)
    heading = header("Soak: three workers behind nginx over a remote-looking origin", [])  # the commit at the start
    workdir = Path(tempfile.mkdtemp(prefix="s3cache-soak-"))
    moto = RangedMoto(workdir)
    relay: ProxyProcess | None = None
    rig: Cluster | None = None
    try:
        moto.start()
        seed(moto.url, args.small, args.large, large_bytes)
        relay = ProxyProcess(moto.port, args.latency_ms / 1000, args.mbps * 1e6).start()
        rig = Cluster("proxy", relay, workdir, RedisServer(workdir)).start()
        samples, overall = run_load(rig, args, large_bytes)
    finally:
        if rig is not None:
            rig.stop()
        if relay is not None:
            relay.stop()
        moto.stop()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = ROOT / "benchmarks" / "results" / f"soak-{stamp}.md"
    plot = out.with_suffix(".png")
    draw(samples, args.sample_s, plot, f"soak {args.minutes:g} min, {args.users} users, three workers behind nginx")
    text = report(samples, overall, args, plot, heading)
    out.write_text(text)
    print(text)
    print(f"written to {out.relative_to(ROOT)} and {plot.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
