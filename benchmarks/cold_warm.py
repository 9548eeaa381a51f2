"""GETs from a remote-looking origin, through s3cache cold, and through s3cache warm, side by side in one run.

The origin sits behind a proxy that delays every request (``--latency-ms``, 20 ms by default). For a 4 KiB
and a 64 MiB object, one asyncio client measures three paths with the same concurrency:

- ``origin``: GETs straight from the slowed origin, always the same few objects;
- ``s3cache cold``: GETs through a worker, each of an object never read before, so every read misses
  (metadata and blocks come from the origin);
- ``s3cache warm``: the objects the cold pass read, again: every read a hit, no origin request.

Cold and warm rows are measured for each origin HTTP client (``--clients``, one fresh worker each with
``--origin-client``), which is how the default client was chosen.

Each row reports requests, req/s, MB/s, latency percentiles (p50/p90/p99/max), the object GETs that reached
the origin, and the ratio to the origin row. A cold and a warm read of one more 64 MiB object are checked by
MD5 afterwards. Results are printed and written to benchmarks/results/ with the machine and commit.

    python benchmarks/cold_warm.py [--latency-ms 20] [--seconds 3] [--clients aiohttp,httpx] [--origin-server dir|moto]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loadgen import Load, fetch_md5, percentiles, run_load
from rig.bench import BUCKET, Rig
from rig.processes import Worker, sigterm_raises
from rig.report import KiB, MiB, cpu_seconds, fmt, header, size_text, write_report


@dataclass
class Row:
    size: int
    path: str
    concurrency: int
    load: Load
    origin_gets: int
    worker_cpu_s: float | None = None  # CPU the worker used during the row

    @property
    def cpu_ms_per_request(self) -> str:
        if self.worker_cpu_s is None or not self.load.latencies_s:
            return ""
        return f"{self.worker_cpu_s * 1000 / len(self.load.latencies_s):.2f}"


def measure(rig: Rig, workers: dict[str, Worker], size: int, keys: list[str], concurrency: int,
            seconds: float) -> list[Row]:
    """The origin row reads the first concurrency keys; each worker's cold and warm rows the others."""
    assert rig.proxy is not None
    rows = []
    origin_keys = keys[:max(1, concurrency)]
    run_load(itertools.islice(itertools.cycle(f"{rig.origin_url}/{BUCKET}/{k}" for k in origin_keys), concurrency),
             concurrency, seconds)  # connections and page cache
    rig.proxy.reset()
    load = run_load(itertools.cycle(f"{rig.origin_url}/{BUCKET}/{k}" for k in origin_keys), concurrency, seconds)
    rows.append(Row(size, "origin", concurrency, load, rig.proxy.counts()[0]))
    cold_keys = keys[len(origin_keys):]
    for client, worker in workers.items():  # each worker has a cache of its own: the same keys are cold for each
        assert worker.proc is not None
        pid, worker_url = worker.proc.pid, worker.url
        rig.proxy.reset()
        cpu = cpu_seconds(pid)
        load = run_load((f"{worker_url}/{BUCKET}/{k}" for k in cold_keys), concurrency, seconds)
        rows.append(Row(size, f"s3cache cold ({client})", concurrency, load, rig.proxy.counts()[0],
                        cpu_seconds(pid) - cpu))
        if len(load.latencies_s) == len(cold_keys):
            print(f"note: the cold {size_text(size)} pass read all {len(cold_keys)} objects in {load.elapsed_s:.1f}s; "
                  f"more objects would make it last --seconds", file=sys.stderr)
        read = cold_keys[:len(load.latencies_s)]
        rig.proxy.reset()
        cpu = cpu_seconds(pid)
        load = run_load(itertools.cycle(f"{worker_url}/{BUCKET}/{k}" for k in read), concurrency, seconds)
        rows.append(Row(size, f"s3cache warm ({client})", concurrency, load, rig.proxy.counts()[0],
                        cpu_seconds(pid) - cpu))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay the origin adds to every request")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--small-concurrency", type=int, default=16, help="connections for the 4 KiB rows")
    parser.add_argument("--large-concurrency", type=int, default=2, help="connections for the 64 MiB rows")
    parser.add_argument("--small-objects", type=int, default=2000, help="distinct 4 KiB objects for the cold pass")
    parser.add_argument("--large-objects", type=int, default=12, help="distinct 64 MiB objects for the cold pass")
    parser.add_argument("--block-size", default="4M", help="s3cache --block-size")
    parser.add_argument("--clients", default="aiohttp,httpx",
                        help="origin HTTP clients to measure, one worker each (s3cache --origin-client)")
    parser.add_argument("--origin-server", choices=["dir", "moto"], default="dir",
                        help="S3 server behind the delay (moto reads a whole object for every ranged GET)")
    args = parser.parse_args()
    sigterm_raises()
    small, large = 4 * KiB, 64 * MiB
    rows: list[Row] = []
    checks: list[str] = []
    with Rig(latency_s=args.latency_ms / 1000, origin_server=args.origin_server) as rig:
        small_keys = [f"small/{i:06d}" for i in range(args.small_concurrency + args.small_objects)]
        rig.put_small(small_keys, small)
        large_keys = [f"large/{i:03d}" for i in range(args.large_concurrency + args.large_objects)]
        md5 = rig.put_random(large_keys[0], large)
        for key in [*large_keys[1:], "large/verify"]:
            rig.copy(large_keys[0], key)
        rig.prime([*small_keys, *large_keys, "large/verify"])
        workers = {client: rig.worker(args.block_size, "8G", "lru", "--origin-client", client)
                   for client in args.clients.split(",")}
        rows += measure(rig, workers, small, small_keys, args.small_concurrency, args.seconds)
        rows += measure(rig, workers, large, large_keys, args.large_concurrency, args.seconds)
        for client, worker in workers.items():
            for state in ("cold", "warm"):
                digest, received, _ = fetch_md5(f"{worker.url}/{BUCKET}/large/verify")
                ok = digest == md5 and received == large
                checks.append(f"{state} read of a 64MiB object ({client}): MD5 "
                              f"{'matches' if ok else 'MISMATCH ' + digest}")
                if not ok:
                    print(f"error: the {state} read ({client}) returned wrong bytes", file=sys.stderr)
    report = render(rows, args, checks)
    write_report("cold_warm", report)
    if any("MISMATCH" in c for c in checks):
        sys.exit(1)


def render(rows: list[Row], args: argparse.Namespace, checks: list[str]) -> str:
    lines = header("GET latency and throughput: remote-looking origin vs s3cache cold vs s3cache warm", [
        f"origin: {args.origin_server} S3 server behind a proxy adding {args.latency_ms:g} ms to every request "
        "(rig.origin.CountingProxy in its own process); all on 127.0.0.1",
        f"s3cache: one worker per origin client ({args.clients}; --origin-client), --block-size "
        f"{args.block_size}, metadata TTL 3600 s, cache larger than the data",
        f"load: one asyncio (aiohttp) client, {args.seconds:g} s per row, 4KiB with {args.small_concurrency} "
        f"connections, 64MiB with {args.large_concurrency}; cold rows read each object once (a miss), warm rows "
        "re-read the objects the cold row read",
        "origin GETs: object GETs the origin received during the row; worker CPU: user+system CPU time of the "
        "worker process per request (less sensitive to a busy machine than the rates); vs origin: req/s (= MB/s) "
        "and p50 ratios",
        *checks,
    ])
    lines += [
        "| object | path | conc. | requests | req/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | origin GETs "
        "| worker CPU ms / req | throughput vs origin | p50 vs origin |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    origin = {r.size: r for r in rows if r.path == "origin"}
    for r in rows:
        p = percentiles(r.load.latencies_s)
        base = origin[r.size]
        base_p50 = percentiles(base.load.latencies_s)["p50"]
        ratio = f"{r.load.requests_per_s / base.load.requests_per_s:.2f}x" if base.load.requests_per_s else "n/a"
        p50_ratio = f"{p['p50'] / base_p50:.2f}x" if base_p50 else "n/a"
        lines.append(
            f"| {size_text(r.size)} | {r.path} | {r.concurrency} | {len(r.load.latencies_s):,} | "
            f"{fmt(r.load.requests_per_s)} | {fmt(r.load.mb_per_s)} | {fmt(p['p50'], 2)} | {fmt(p['p90'], 2)} | "
            f"{fmt(p['p99'], 2)} | {fmt(p['max'], 2)} | {r.origin_gets:,} | {r.cpu_ms_per_request} | {ratio} | "
            f"{p50_ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
