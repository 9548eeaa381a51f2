"""Warm reads local, proxied from a peer, and redirected to a peer, in a 3-worker cluster (data_paths.py's setup).

A worker (the holder) alone in a cluster over the throttled origin reads a 4 KiB and a 64 MiB object once, so
it owns and holds every block. Two gateways join (capacity 0: they hold nothing and are never placement
targets), one with ``--data-path proxy``, one with ``--data-path redirect``. Then for each object, aiohttp
(which follows 307s) at a fixed concurrency GETs it for a few seconds from the holder (local), the proxy
gateway (streams the blocks from the holder) and the redirect gateway (answers 307 to the holder). The CPU
and peak RSS are those of all three workers. Every path's bytes are checked by MD5 against what was written.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import time

from benchmarks.loadgen import fetch_md5, run_load
from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from rig.bench import BUCKET
from rig.processes import Worker
from rig.redis import RedisServer
from rig.report import KiB, MiB, ProcessMeter

OBJECTS = {"4KiB": 4 * KiB, "64MiB": 64 * MiB}
CONCURRENCY = {"4KiB": 16, "64MiB": 2}
SECRET = "bench-suite-secret"
CLUSTER_SETTINGS = "[cluster]\nheartbeat_ttl_s = 2.0\n"


def run(ctx: Context) -> list[Row]:
    stage = ctx.stage
    redis = RedisServer(stage.workdir)
    workers: list[Worker] = []
    try:
        redis.start()
        cluster = ["--redis", redis.url, "--cluster-secret", SECRET]
        keys = {name: f"paths/{name}" for name in OBJECTS}
        data = {name: os.urandom(size) for name, size in OBJECTS.items()}
        stage.put_many({keys[name]: body for name, body in data.items()})
        expected = {name: hashlib.md5(body).hexdigest() for name, body in data.items()}
        holder = stage.worker_with(CLUSTER_SETTINGS, *cluster)
        workers.append(holder)
        for key in keys.values():  # the holder alone: it owns and fills every block
            fetch_md5(f"{holder.url}/{BUCKET}/{key}")
        gateways = {}
        for mode in ("proxy", "redirect"):
            gateways[mode] = stage.worker_with(CLUSTER_SETTINGS, *cluster, "--data-path", mode, capacity="0")
            workers.append(gateways[mode])
        time.sleep(2.5)  # every worker's membership snapshot has everyone (heartbeats every 2/3 s)
        pids = [w.proc.pid for w in workers if w.proc is not None]
        rows = []
        for name, key in keys.items():
            concurrency = CONCURRENCY[name]
            local = None
            for path, worker in (("local", holder), ("proxied", gateways["proxy"]),
                                 ("redirected", gateways["redirect"])):
                url = f"{worker.url}/{BUCKET}/{key}"
                run_load([url] * (50 if name == "4KiB" else 4), concurrency, 1.0)  # connections
                stage.relay.reset()
                with ProcessMeter(pids) as meter:
                    load = run_load(itertools.repeat(url), concurrency, ctx.profile.path_seconds)
                unit, value = ("req/s", load.requests_per_s) if name == "4KiB" else ("MiB/s", load.mb_per_s)
                row = Row(f"data paths {name}", f"{path}, aiohttp {concurrency} connections",
                          f"paths-{'proxy' if path == 'proxied' else path}-{name}", unit, value,
                          "" if local is None else "local", math.nan if local is None else local.value,
                          latencies_s=load.latencies_s,
                          reference_latencies_s=[] if local is None else local.latencies_s,
                          origin=stage.relay.tally(), objects=1, requests=len(load.latencies_s),
                          mib=load.bytes / MiB).metered(meter)
                local = local or row
                rows.append(row)
        for name, key in keys.items():
            for mode, gateway in gateways.items():
                digest, size, _ = fetch_md5(f"{gateway.url}/{BUCKET}/{key}")
                if digest != expected[name] or size != OBJECTS[name]:
                    raise AssertionError(f"the {mode} gateway served wrong bytes for {name}")
        return rows
    finally:
        for worker in reversed(workers):
            stage.stop_worker(worker)
        redis.stop()
