"""Where a proxied byte's CPU goes: the holder's and the gateway's CPU per request, local against proxied.

A holder (it owns and holds every block) and a capacity-0 gateway (``--data-path proxy``) share a Redis over an
unthrottled moto origin; the same warm objects (4 KiB and 64 MiB) are read a fixed number of times from the
holder itself and through the gateway, and each worker's user + system CPU (/proc) is divided by the requests.
CPU rather than throughput: it is what other load on the machine does not distort.

    python benchmarks/hop_cpu.py [--large 24] [--small 3000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.loadgen import fetch_md5, run_load
from benchmarks.suite.stage import Stage
from rig.bench import BUCKET
from rig.processes import Worker
from rig.redis import RedisServer
from rig.report import KiB, MiB, cpu_seconds, fmt, header, write_report

SETTINGS = "[cluster]\nheartbeat_ttl_s = 2.0\n"


def _pid(worker: Worker) -> int:
    assert worker.proc is not None
    return worker.proc.pid


def measure(holder: Worker, gateway: Worker, key: str, count: int, concurrency: int) -> list[str]:
    rows = []
    for path, worker in (("local", holder), ("proxied", gateway)):
        url = f"{worker.url}/{BUCKET}/{key}"
        run_load([url] * 4, concurrency, 60)  # connections open, blocks warm
        pids = {"holder": _pid(holder), "gateway": _pid(gateway)}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.perf_counter()
        load = run_load([url] * count, concurrency, 600)
        seconds = time.perf_counter() - began
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        mib = load.bytes / MiB
        rows.append(f"| {key} | {path} | {count} x {concurrency} | {fmt(count / seconds)} | "
                    f"{fmt(1000 * used['holder'] / count, 3)} | {fmt(1000 * used['gateway'] / count, 3)} | "
                    f"{fmt(1000 * sum(used.values()) / mib, 2)} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--large", type=int, default=24, help="64 MiB reads per path (one at a time)")
    parser.add_argument("--small", type=int, default=3000, help="4 KiB reads per path (8 at a time)")
    args = parser.parse_args()
    stage = Stage(latency_s=0.0, rate_bytes_s=0.0)
    stage.start()
    redis = RedisServer(stage.workdir)
    workers: list[Worker] = []
    try:
        redis.start()
        cluster = ["--redis", redis.url, "--cluster-secret", "hop-cpu-secret"]
        stage.put_many({"hop/4KiB": os.urandom(4 * KiB), "hop/64MiB": os.urandom(64 * MiB)})
        holder = stage.worker_with(SETTINGS, *cluster)
        workers.append(holder)
        for key in ("hop/4KiB", "hop/64MiB"):  # the holder alone: it owns and fills every block
            fetch_md5(f"{holder.url}/{BUCKET}/{key}")
        gateway = stage.worker_with(SETTINGS, *cluster, "--data-path", "proxy", capacity="0")
        workers.append(gateway)
        time.sleep(2.5)  # both membership snapshots hold both
        rows = measure(holder, gateway, "hop/64MiB", args.large, 1) + measure(holder, gateway, "hop/4KiB", args.small, 8)
    finally:
        for worker in reversed(workers):
            stage.stop_worker(worker)
        redis.stop()
        stage.close()
    lines = header("The peer hop's CPU: local vs proxied", [
        "holder and capacity-0 proxy gateway sharing a Redis, 4 MiB blocks, unthrottled moto origin, warm reads",
        "CPU = user + system of each worker (/proc/PID/stat) over the reads; total = both workers"])
    lines += ["| object | path | reads x concurrency | req/s | holder CPU ms/req | gateway CPU ms/req | "
              "total CPU ms/MiB |", "|---|---|---|---|---|---|---|", *rows]
    print(f"written to {write_report('hop_cpu', chr(10).join(lines) + chr(10))}")


if __name__ == "__main__":
    main()
