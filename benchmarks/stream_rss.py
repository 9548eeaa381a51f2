"""Peak memory of a worker streaming one large object (2 GiB by default) from a remote-looking origin.

A worker in front of the slowed origin (``--latency-ms``) serves one whole-object GET twice: the first read
is cold (every block from the origin), the second warm when the cache can hold the object. The client hashes
the bytes as they stream and compares the MD5 with the origin's. The worker's peak resident memory (VmHWM
from /proc/<pid>/status, reset before each read with ``clear_refs``) must stay under ``--limit-mib``
(200 MiB: the design streams, it never holds an object). It runs once per ``--capacities`` value; one
smaller than the object shows that an object larger than the cache streams too (its second read misses
again, evicting as it goes, and the cache never exceeds its capacity).

    python benchmarks/stream_rss.py [--size 2G] [--capacities 4G 512M] [--latency-ms 20] [--origin-server dir|moto]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loadgen import fetch_md5
from rig.bench import BUCKET, Rig
from rig.processes import sigterm_raises
from rig.report import MiB, header, parse_size, proc_status, reset_peak_rss, size_text, write_report


@dataclass
class Pass:
    capacity: int
    name: str
    seconds: float
    ok: bool
    origin_gets: int
    rss_before: int
    peak_rss: int
    peak_source: str
    cached_bytes: int


class RssSampler:
    """VmRSS polled every 20 ms: the peak when the kernel will not reset VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            except OSError:
                return
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def disk_bytes(directory: Path) -> int:
    total = 0
    for folder, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="object size (K/M/G suffixes)")
    parser.add_argument("--capacities", nargs="+", default=["4G", "512M"],
                        help="worker --cache-capacity values, one run each")
    parser.add_argument("--block-size", default="4M", help="s3cache --block-size")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay the origin adds to every request")
    parser.add_argument("--limit-mib", type=float, default=200.0, help="the peak RSS requirement")
    parser.add_argument("--origin-server", choices=["dir", "moto"], default="dir",
                        help="S3 server behind the delay (moto reads the whole object for every ranged GET: "
                             "impractical at 2 GiB)")
    args = parser.parse_args()
    sigterm_raises()
    size = parse_size(args.size)
    passes: list[Pass] = []
    with Rig(latency_s=args.latency_ms / 1000, origin_server=args.origin_server) as rig:
        assert rig.proxy is not None
        began = time.perf_counter()
        md5 = rig.put_random("huge", size)
        rig.prime(["huge"])
        setup_s = time.perf_counter() - began
        print(f"origin holds {size_text(size)} (MD5 {md5}) after {setup_s:.1f}s", file=sys.stderr)
        for capacity_text in args.capacities:
            capacity = parse_size(capacity_text)
            worker = rig.worker(args.block_size, capacity_text)
            assert worker.proc is not None
            pid = worker.proc.pid
            cache_dir = Path(worker.args[worker.args.index("--cache-dir") + 1])
            for name in ("1st read (cold)", "2nd read"):
                rss_before = proc_status(pid)["VmRSS"]
                hwm_reset = reset_peak_rss(pid)
                rig.proxy.reset()
                with RssSampler(pid) as sampler:
                    digest, received, seconds = fetch_md5(f"{worker.url}/{BUCKET}/huge")
                status = proc_status(pid)
                peak, source = (status["VmHWM"], "VmHWM") if hwm_reset else (sampler.peak, "VmRSS sampled")
                if not hwm_reset and status["VmHWM"] > peak:
                    source += f" (VmHWM since start {status['VmHWM'] / MiB:.0f} MiB)"
                one = Pass(capacity, name, seconds, digest == md5 and received == size, rig.proxy.counts()[0],
                           rss_before, peak, source, disk_bytes(cache_dir))
                passes.append(one)
                print(f"{size_text(capacity)} {name}: {received / MiB / seconds:.0f} MB/s, MD5 "
                      f"{'ok' if one.ok else 'WRONG ' + digest}, peak RSS {peak / MiB:.0f} MiB", file=sys.stderr)
            rig.stop_worker(worker)
    report = render(passes, args, size, setup_s)
    write_report("stream_rss", report)
    if not all(p.ok and p.peak_rss < args.limit_mib * MiB for p in passes):
        sys.exit(1)


def render(passes: list[Pass], args: argparse.Namespace, size: int, setup_s: float) -> str:
    blocks = -(-size // parse_size(args.block_size))
    lines = header(f"Worker memory while streaming a {size_text(size)} object", [
        f"origin: {args.origin_server} S3 server behind a proxy adding {args.latency_ms:g} ms to every request; "
        f"the object was written there in {setup_s:.0f} s; all on 127.0.0.1",
        f"s3cache: one worker per capacity, --block-size {args.block_size} ({blocks} blocks), default read-ahead; "
        "one client GET of the whole object per row, hashed (MD5) as it streams",
        f"peak RSS: VmHWM of the worker process, reset before each read; requirement < {args.limit_mib:g} MiB",
    ])
    lines += [
        "| cache capacity | read | MB/s | seconds | MD5 | origin GETs | RSS before MiB | peak RSS MiB "
        f"| < {args.limit_mib:g} MiB | cached on disk MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in passes:
        within = "yes" if p.peak_rss < args.limit_mib * MiB else "**NO**"
        lines.append(
            f"| {size_text(p.capacity)} | {p.name} | {size / MiB / p.seconds:,.0f} | {p.seconds:.1f} | "
            f"{'ok' if p.ok else '**WRONG**'} | {p.origin_gets} | {p.rss_before / MiB:.0f} | {p.peak_rss / MiB:.0f}"
            f"{'' if p.peak_source == 'VmHWM' else ' (' + p.peak_source + ')'} | {within} | "
            f"{p.cached_bytes / MiB:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
