"""Small objects (4 KiB, 110 KiB) through one s3cache worker, cold and warm, vs the origin directly.

For each size, N objects new to the worker are read by the small-object reference, a 16-thread pool of boto3
GetObjects: once from the throttled origin directly, once through the worker (cold: every object a miss),
once more through the worker (warm). Then one object is read for a few seconds by wrk (16 connections, the
lightest client, so the servers rather than the client are measured) from the throttled origin, from the
worker (warm) and from nginx serving the same bytes from a directory.
"""

from __future__ import annotations

import os

from benchmarks.get_vs_nginx import run_wrk
from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from benchmarks.suite.stage import POOL_THREADS, pool_gets, s3
from rig.bench import BUCKET
from rig.report import KiB, MiB, ProcessMeter, size_text

SIZES = (4 * KiB, 110 * KiB)
WRK_CONNECTIONS = 16


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for size in SIZES:
        rows += _one_size(ctx, size)
    return rows


def _one_size(ctx: Context, size: int) -> list[Row]:
    stage, worker, relay = ctx.stage, ctx.worker, ctx.stage.relay
    name = size_text(size)
    workload = f"small {name}"
    keys = [f"small/{name}/{i:05d}" for i in range(ctx.profile.small_objects)]
    objects = {key: os.urandom(size) for key in keys}
    stage.put_many(objects)
    ctx.nginx.put(keys[0], objects[keys[0]])
    direct_client, cached_client = s3(stage.origin_url), s3(worker.url)
    pool_gets(direct_client, keys[:POOL_THREADS])  # connections, and moto's first touch of its files
    relay.reset()
    direct = pool_gets(direct_client, keys)
    rows = [Row(workload, f"direct, boto3 {POOL_THREADS}-thread pool", "direct", "obj/s", direct.per_s,
                latencies_s=direct.latencies_s, origin=relay.tally(), objects=len(keys), requests=len(keys),
                mib=direct.bytes / MiB)]
    for state in ("cold", "warm"):
        relay.reset()
        with ProcessMeter([ctx.worker_pid]) as meter:
            got = pool_gets(cached_client, keys)
        assert got.bytes == size * len(keys), f"{state} {name}: {got.bytes} bytes"
        rows.append(Row(workload, f"s3cache {state}, boto3 {POOL_THREADS}-thread pool", f"small-{state}", "obj/s",
                        got.per_s, f"direct, boto3 {POOL_THREADS}-thread pool", direct.per_s,
                        latencies_s=got.latencies_s, reference_latencies_s=direct.latencies_s,
                        origin=relay.tally(), objects=len(keys), requests=len(keys),
                        mib=got.bytes / MiB).metered(meter))
    seconds = ctx.profile.wrk_seconds
    path = f"/{BUCKET}/{keys[0]}"
    relay.reset()
    origin = run_wrk(stage.origin_url + path, WRK_CONNECTIONS, seconds)
    rows.append(Row(workload, f"direct, wrk {WRK_CONNECTIONS} connections, one object", "direct-wrk", "req/s",
                    origin["rps"], origin=relay.tally(), objects=1, per_what="object (all requests)",
                    requests=round(origin["rps"] * seconds), quantiles_ms=origin))
    moto = run_wrk(stage.direct_url + path, WRK_CONNECTIONS, seconds)
    rows.append(Row(workload, f"moto itself (no relay), wrk {WRK_CONNECTIONS} connections", "origin-capacity",
                    "req/s", moto["rps"], quantiles_ms=moto,
                    note="the origin's own capacity on this machine: what bounds the direct rows"))
    nginx = run_wrk(ctx.nginx.url + path, WRK_CONNECTIONS, seconds)
    rows.append(Row(workload, f"nginx, wrk {WRK_CONNECTIONS} connections, same file", "nginx-wrk", "req/s",
                    nginx["rps"], quantiles_ms=nginx))
    relay.reset()
    with ProcessMeter([ctx.worker_pid]) as meter:
        warm = run_wrk(worker.url + path, WRK_CONNECTIONS, seconds)
    tally = relay.tally()
    requests = round(warm["rps"] * seconds)
    mib = warm["mbps"] * seconds
    rows.append(Row(workload, f"s3cache warm, wrk {WRK_CONNECTIONS} connections, vs the origin", "small-warm-origin",
                    "req/s",
                    warm["rps"], f"direct, wrk {WRK_CONNECTIONS} connections", origin["rps"],
                    origin=tally, objects=1, per_what="object", requests=requests, mib=mib,
                    quantiles_ms=warm).metered(meter))
    rows.append(Row(workload, f"s3cache warm, wrk {WRK_CONNECTIONS} connections, vs nginx", f"small-warm-nginx-{name}",
                    "req/s", warm["rps"], f"nginx, wrk {WRK_CONNECTIONS} connections", nginx["rps"],
                    origin=tally, objects=1, requests=requests, mib=mib, quantiles_ms=warm).metered(meter))
    return rows
