"""64 concurrent cold readers of one object across 3 workers: how often the origin is asked for each block.

``rig.cluster.Cluster`` as deployed (nginx with the shipped config in front of three workers sharing one Redis,
1 MiB blocks) over the throttled origin. 64 aiohttp readers GET one object none of the workers has seen, all
at once through nginx; every block should be fetched from the origin once, whichever worker each reader
lands on. The reference is the same 64 readers at the origin directly.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadgen import fetch_md5, run_load
from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from rig.bench import BUCKET
from rig.cluster import Cluster
from rig.redis import RedisServer
from rig.report import MiB, ProcessMeter, size_text

READERS = 64
BLOCK = MiB  # rig.cluster's --block-size


@dataclass
class _Origin:
    """What Cluster needs of its origin: where it is (here the relay in front of moto)."""

    url: str


def run(ctx: Context) -> list[Row]:
    stage, relay = ctx.stage, ctx.stage.relay
    size = ctx.profile.fanin_bytes
    data = os.urandom(size)
    key = "fanin/object"
    stage.put_many({key: data})
    workload = f"fan-in {READERS} readers x {size_text(size)}"
    run_load([f"{stage.origin_url}/{BUCKET}/{key}"], 1, 600)  # moto's first touch
    relay.reset()
    direct = run_load([f"{stage.origin_url}/{BUCKET}/{key}"] * READERS, READERS, 600)
    rows = [Row(workload, f"direct, {READERS} aiohttp readers at once", "direct", "MiB/s", direct.mb_per_s,
                latencies_s=direct.latencies_s, origin=relay.tally(), objects=READERS, requests=READERS,
                mib=direct.bytes / MiB)]
    workdir = Path(stage.workdir) / "fanin-cluster"
    workdir.mkdir()
    cluster = Cluster("proxy", _Origin(stage.origin_url), workdir, RedisServer(workdir))  # type: ignore[arg-type]
    try:
        cluster.start()
        pids = [w.proc.pid for w in cluster.workers.values() if w.proc is not None]
        url = f"{cluster.url}/{BUCKET}/{key}"
        relay.reset()
        with ProcessMeter(pids) as meter:
            load = run_load([url] * READERS, READERS, 600)
        if load.bytes != size * READERS:
            raise AssertionError(f"the readers got {load.bytes} bytes, not {READERS} x {size}")
        blocks = -(-size // BLOCK)
        rows.append(Row(workload, f"s3cache cold, 3 workers behind nginx, {READERS} readers at once", "fanin",
                        "MiB/s", load.mb_per_s, "direct", direct.mb_per_s, latencies_s=load.latencies_s,
                        reference_latencies_s=direct.latencies_s, origin=relay.tally(), objects=blocks,
                        per_what="1 MiB block", requests=READERS, mib=load.bytes / MiB).metered(meter))
        digest, received, _ = fetch_md5(url)
        if digest != hashlib.md5(data).hexdigest() or received != size:
            raise AssertionError("the cluster served wrong bytes")
    finally:
        cluster.stop()
    return rows
