"""Large objects (256 MiB; 1 GiB in full mode): one GetObject and the transfer manager, cold and warm.

The reference is boto3's transfer manager reading the throttled origin directly (``download_fileobj``, 10
threads, 8 MiB parts); one plain GetObject from the origin is measured too (one connection: the rate cap).
Through the worker, each of one GetObject and the transfer manager reads a copy of the object it has never
seen (cold), then the same copy again (warm). The worker's CPU per MiB, cold against warm, is a row of its
own. The warm GetObject's bytes are checked against the origin's by MD5 afterwards.
"""

from __future__ import annotations

from benchmarks.loadgen import fetch_md5
from benchmarks.suite.context import Context
from benchmarks.suite.rows import Row
from benchmarks.suite.stage import Timed, get_whole, s3, transfer
from rig.bench import BUCKET
from rig.report import MiB, ProcessMeter, size_text


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for size in ctx.profile.large_sizes:
        rows += _one_size(ctx, size)
    return rows


def _one_size(ctx: Context, size: int) -> list[Row]:
    stage, relay = ctx.stage, ctx.stage.relay
    name = size_text(size)
    workload = f"large {name}"
    source = f"large/{name}/source"
    md5 = stage.put_random(source, size)
    for copy in ("get", "tm"):
        stage.copy(source, f"large/{name}/{copy}")
    direct_client, cached_client = s3(stage.origin_url), s3(ctx.worker.url)
    blocks = -(-size // (4 * MiB))

    def row(case: str, key: str, got: Timed, reference: str = "", reference_value: float = float("nan"),
            meter: ProcessMeter | None = None, objects: int = 1, per_what: str = "object") -> Row:
        assert got.bytes == size, f"{case}: {got.bytes} of {size} bytes"
        one = Row(workload, case, key, "MiB/s", got.mib_per_s, reference, reference_value,
                  latencies_s=got.latencies_s, origin=relay.tally(), objects=objects, per_what=per_what,
                  requests=len(got.latencies_s), mib=got.bytes / MiB)
        return one.metered(meter) if meter is not None else one

    relay.reset()
    direct_tm = transfer(direct_client, source)
    tm_row = row("direct, transfer manager (10 threads, 8 MiB parts)", "direct-tm", direct_tm)
    relay.reset()
    direct_get = get_whole(direct_client, source)
    rows = [tm_row, row("direct, one GetObject", "direct-get", direct_get)]
    reference = "direct, transfer manager"
    measured: dict[str, Row] = {}
    for state in ("cold", "warm"):
        relay.reset()
        with ProcessMeter([ctx.worker_pid]) as meter:
            got = get_whole(cached_client, f"large/{name}/get")
        measured[state] = row(f"s3cache {state}, one GetObject", f"large-{state}-get", got, reference,
                              direct_tm.mib_per_s, meter, blocks, "4 MiB block")
        rows.append(measured[state])
    for state in ("cold", "warm"):
        relay.reset()
        with ProcessMeter([ctx.worker_pid]) as meter:
            got = transfer(cached_client, f"large/{name}/tm")
        rows.append(row(f"s3cache {state}, transfer manager", f"large-{state}-tm", got, reference,
                        direct_tm.mib_per_s, meter, blocks, "4 MiB block"))
    cold, warm = measured["cold"], measured["warm"]
    rows.append(Row(workload, "worker CPU per MiB: cold GetObject", "large-cpu", "CPU ms/MiB", cold.cpu_ms_per_mib,
                    "warm GetObject", warm.cpu_ms_per_mib, peak_rss=max(cold.peak_rss or 0, warm.peak_rss or 0)))
    digest, received, _ = fetch_md5(f"{ctx.worker.url}/{BUCKET}/large/{name}/get")
    if digest != md5 or received != size:
        raise AssertionError(f"the warm {name} object came back wrong: MD5 {digest}, {received} bytes")
    return rows
