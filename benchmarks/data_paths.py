"""Warm GETs served locally, proxied from a peer, and redirected to a peer: side by side in one run.

A real redis-server and an origin (an s3cache worker over a directory) on 127.0.0.1. Worker B caches a
4 KiB and a 64 MiB object (it is the only worker when they are first read, so it holds every block).
Two gateways (capacity 0, so they hold nothing and are never placement targets) join the cluster: one
with --data-path proxy, one with --data-path redirect. Then, for each object:

- local:    GET from B, which holds every block;
- proxy:    GET from the proxy gateway, which streams the blocks from B;
- redirect: GET from the redirect gateway, answered 307 to B, followed by the client.

The load client is aiohttp (it follows redirects); wrk on B is the no-Python reference for "local".

    python benchmarks/data_paths.py [--seconds 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from benchmarks.loadgen import fetch_md5, percentiles, run_load  # noqa: E402
from rig.processes import Worker  # noqa: E402
from rig.redis import RedisServer  # noqa: E402
from rig.report import header, write_report  # noqa: E402

OBJECTS = {"4KiB": 4 << 10, "64MiB": 64 << 20}
SECRET = "bench-cluster-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16, help="for the 4 KiB object (64 MiB uses 2)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3cache-paths-"))
    procs: list[Worker] = []
    redis = RedisServer(work)
    try:
        redis.start()
        origin = Worker(["--data", str(work / "origin"), "--log-level", "warning"], work).start()
        procs.append(origin)
        s3 = boto3.client("s3", endpoint_url=origin.url, aws_access_key_id="b", aws_secret_access_key="b",
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="bench")
        for name, size in OBJECTS.items():
            s3.put_object(Bucket="bench", Key=name, Body=os.urandom(size))
        env = {"AWS_ACCESS_KEY_ID": "b", "AWS_SECRET_ACCESS_KEY": "b", "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "2"}
        cluster = ["--origin", origin.url, "--redis", redis.url, "--cluster-secret", SECRET,
                   "--log-level", "warning", "--block-size", "4M"]
        holder = Worker([*cluster, "--cache-dir", str(work / "cache-b")], work, env=env).start()
        procs.append(holder)
        for name in OBJECTS:  # B alone: it owns and fills every block
            fetch_md5(f"{holder.url}/bench/{name}")
        gateways = {}
        for mode in ("proxy", "redirect"):
            gateways[mode] = Worker([*cluster, "--cache-dir", str(work / f"cache-{mode}"), "--cache-capacity", "0",
                                     "--data-path", mode], work, env=env).start()
            procs.append(gateways[mode])
        time.sleep(2.5)  # every worker's membership snapshot has everyone
        rows = []
        for name in OBJECTS:
            concurrency = args.concurrency if name == "4KiB" else 2
            for path, base in (("local", holder.url), ("proxy", gateways["proxy"].url),
                               ("redirect", gateways["redirect"].url)):
                url = f"{base}/bench/{name}"
                run_load([url] * 50, concurrency, 1.0)  # warm connections
                load = run_load(itertools.repeat(url), concurrency, args.seconds)
                rows.append((name, path, load.requests_per_s, load.mb_per_s, percentiles(load.latencies_s)))
        for name in OBJECTS:
            for mode in ("proxy", "redirect"):
                digest, size, _ = fetch_md5(f"{gateways[mode].url}/bench/{name}")
                expected, _, _ = fetch_md5(f"{origin.url}/bench/{name}")
                assert digest == expected and size == OBJECTS[name], f"{mode} served wrong bytes for {name}"
    finally:
        for worker in reversed(procs):
            worker.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    lines = header("Warm GET: local vs proxied from a peer vs redirected to a peer",
                   [f"{args.seconds:.0f}s per row; 4KiB at {args.concurrency} concurrent requests, 64MiB at 2",
                    "aiohttp client (follows 307); every worker, Redis and the client share the 2 cores",
                    "bytes of every path checked against the origin by MD5 after the run"])
    lines += ["| object | path | req/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | vs local |",
              "|---|---|---|---|---|---|---|---|---|"]
    local = {name: (rps, mbps) for name, path, rps, mbps, _ in rows if path == "local"}
    for name, path, rps, mbps, p in rows:
        ratio = rps / local[name][0] if name == "4KiB" else mbps / local[name][1]
        lines.append(f"| {name} | {path} | {rps:,.0f} | {mbps:,.1f} | {p['p50']:.2f} | {p['p90']:.2f} | "
                     f"{p['p99']:.2f} | {p['max']:.2f} | {ratio:.2f}x |")
    write_report("data_paths", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
