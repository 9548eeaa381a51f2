"""Peak RSS of a worker streaming one cold 2 GiB object with the largest read-ahead (full mode only).

A fresh worker with ``readahead_blocks = 64`` (the most the settings allow) serves one whole-object GET of an
object it has never seen; the client hashes the bytes as they stream and compares the MD5 with what was
written. The worker's VmHWM is reset before the read (benchmarks/stream_rss.py measures the same at the
default read-ahead and with a cache smaller than the object).
"""

from __future__ import annotations

from benchmarks.loadgen import fetch_md5
from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from rig.bench import BUCKET
from rig.report import MiB, ProcessMeter, size_text

READAHEAD = 64  # conf.settings.CacheSettings.readahead_blocks' upper bound


def run(ctx: Context) -> list[Row]:
    stage, relay = ctx.stage, ctx.stage.relay
    size = ctx.profile.rss_bytes
    md5 = stage.put_random("rss/huge", size)
    worker = stage.worker_with(f"[cache]\nreadahead_blocks = {READAHEAD}\n")
    try:
        assert worker.proc is not None
        relay.reset()
        with ProcessMeter([worker.proc.pid]) as meter:
            digest, received, seconds = fetch_md5(f"{worker.url}/{BUCKET}/rss/huge")
        if digest != md5 or received != size:
            raise AssertionError(f"the streamed object came back wrong: MD5 {digest}, {received} bytes")
        note = "" if meter.hwm_reset else "VmHWM since the worker started (the kernel refused clear_refs)"
        return [Row(f"stream {size_text(size)}", f"s3cache cold, one GET, readahead_blocks = {READAHEAD}", "rss",
                    "MiB/s", received / MiB / seconds, latencies_s=[seconds], origin=relay.tally(),
                    objects=-(-size // (4 * MiB)), per_what="4 MiB block", requests=1, mib=received / MiB,
                    note=note).metered(meter)]
    finally:
        stage.stop_worker(worker)
