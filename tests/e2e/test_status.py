"""`s3cache status` against a real cluster: three workers, a real redis-server, nginx, moto behind a counting proxy.

- a live cluster: every worker with its numbers, totals that add up to what was read, no warnings; the table,
  the JSON and a bounded `--watch`;
- a worker killed by PID is flagged within the heartbeat TTL;
- Redis down is reported as a warning (exit status 1), not a traceback;
- after Redis is restarted by PID (it comes back empty) and the workers republish what they hold, the totals are
  the blocks there are, not more, and reads go to the holders, not to the origin.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.cli.health import rows, totals, warnings
from rig.cluster import WORKER_IDS, Cluster
from rig.origin import CountingProxy
from rig.processes import ROOT
from rig.redis import RedisServer

pytestmark = pytest.mark.slow

MiB = 1 << 20
TTL_S = 3.0  # cluster.heartbeat_ttl_s's default, which the rig's workers run with
CLI = [sys.executable, "-m", "proxy.cli.main", "status"]


@pytest.fixture
def cluster(counting: CountingProxy, tmp_path: Path) -> Iterator[Cluster]:
    rig = Cluster("proxy", counting, tmp_path, RedisServer(tmp_path))
    try:
        yield rig.start()
    finally:
        rig.stop()


def status(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--endpoint", endpoint, *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=dict(os.environ))


def report(endpoint: str) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{endpoint}/_s3cache/status", timeout=10).raise_for_status().json()  # type: ignore[no-any-return]


def wait_totals(endpoint: str, blocks: int, timeout_s: float = 10.0) -> dict:  # type: ignore[type-arg]
    """Until the workers' heartbeats (every TTL/3) show blocks in all; the last report."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = report(endpoint)
        if totals(rows(seen, time.time())).blocks == blocks or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def put(rig: Cluster, bucket: str, key: str, size: int) -> bytes:
    data = os.urandom(size)
    rig.boto3().put_object(Bucket=bucket, Key=key, Body=data)
    return data


def read(url: str, data: bytes) -> None:
    r = httpx.get(url, timeout=60)
    assert r.status_code == 200 and hashlib.md5(r.content).digest() == hashlib.md5(data).digest()


def test_live_cluster_table_json_and_watch(cluster: Cluster) -> None:
    bucket = cluster.bucket("status")
    data = put(cluster, bucket, "six.bin", 6 * MiB)  # six 1 MiB blocks
    read(f"{cluster.url}/{bucket}/six.bin", data)
    read(f"{cluster.url}/{bucket}/six.bin", data)
    endpoint = cluster.workers["w0"].url
    wait_totals(endpoint, 6)
    deadline = time.monotonic() + 10
    while True:  # the bytes-served counters ride on the next heartbeat too
        shown = json.loads((result := status(endpoint, "--json")).stdout)
        if shown["totals"]["served"] and sum(shown["totals"]["served"].values()) == 2 * len(data):
            break
        assert time.monotonic() < deadline, shown["totals"]
        time.sleep(0.3)
    assert result.returncode == 0, result.stderr
    assert shown["warnings"] == []
    assert [w["id"] for w in shown["cluster"]["workers"]] == list(WORKER_IDS)
    assert all(w["live"] and w["url"] == cluster.workers[w["id"]].url for w in shown["cluster"]["workers"])
    assert shown["cluster"]["block_size_bytes"] == MiB and shown["cluster"]["redis_up"] is True
    total = shown["totals"]
    assert total["blocks"] == 6
    assert total["used"] == sum(w["used_bytes"] for w in shown["cluster"]["workers"]) > 6 * MiB
    assert total["capacity"] == 3 * 512 * MiB
    assert 0 < total["served"]["origin"] <= len(data)  # a block read where its owner filled it counts as origin
    for worker in shown["cluster"]["workers"]:
        assert worker["started"] <= worker["heartbeat"] <= time.time()
        assert worker["requests"] >= 0 and worker["requests_per_s"] >= 0

    table = status(endpoint)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"s3cache cluster seen from {endpoint}: 3 live workers, Redis ")
    for wid in WORKER_IDS:
        assert any(line.split()[:3] == [wid, cluster.workers[wid].url, "live"] for line in lines), table.stdout
    assert any(line.split()[0] == "total" and " 6 " in line for line in lines), table.stdout
    assert lines[-1] == "no warnings"

    watched = status(endpoint, "--watch", "0.5", "--count", "2")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.count("s3cache cluster seen from") == 2
    stream = status(endpoint, "--json", "--watch", "0.5", "--count", "2")
    assert [json.loads(line)["totals"]["blocks"] for line in stream.stdout.splitlines()] == [6, 6]


def test_watch_ends_on_sigint(cluster: Cluster) -> None:
    watch = subprocess.Popen([*CLI, "--endpoint", cluster.workers["w0"].url, "--watch", "0.2"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        assert watch.stdout is not None
        while "no warnings" not in watch.stdout.readline():
            assert time.monotonic() < deadline
        watch.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
    assert watch.returncode == 0 and "Traceback" not in err, err


def test_a_worker_killed_by_pid_is_flagged_within_the_heartbeat_ttl(cluster: Cluster) -> None:
    endpoint = cluster.workers["w0"].url
    cluster.workers["w2"].stop(signal.SIGKILL)
    killed = time.monotonic()
    while not any(text.startswith("worker w2 ") for text in warnings(report(endpoint), time.time())):
        assert time.monotonic() - killed < TTL_S, "w2 not flagged within the heartbeat TTL"
        time.sleep(0.1)
    shown = status(endpoint)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert f"WARNING: worker w2 ({cluster.workers['w2'].url}) is missing heartbeats: last one" in shown.stdout
    assert shown.stdout.count("missing heartbeats") == 1  # the others are fine
    row = next(line.split() for line in shown.stdout.splitlines() if line.startswith("w2 "))
    assert row[2] in ("late", "gone")
    time.sleep(TTL_S)  # past its TTL it has left the live set, and is still shown, as gone
    gone = json.loads(status(endpoint, "--json").stdout)
    w2 = next(w for w in gone["cluster"]["workers"] if w["id"] == "w2")
    assert w2["live"] is False
    assert any("no longer a placement target" in text for text in gone["warnings"])


def test_redis_down_is_a_warning_not_a_traceback(cluster: Cluster) -> None:
    cluster.redis.stop()
    shown = status(cluster.workers["w1"].url)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr
    assert f"WARNING: Redis at {cluster.redis.url} is unreachable from {cluster.workers['w1'].url} (" in shown.stdout
    assert "Redis " + cluster.redis.url + " UNREACHABLE" in shown.stdout
    as_json = json.loads(status(cluster.workers["w1"].url, "--json").stdout)
    assert as_json["cluster"]["redis_up"] is False
    assert {w["id"] for w in as_json["cluster"]["workers"]} == set(WORKER_IDS)  # its last snapshot
    gone = status("http://127.0.0.1:9")  # no worker there: one line, exit 2
    assert gone.returncode == 2 and gone.stderr.startswith("s3cache: cannot read the status of http://127.0.0.1:9")
    assert "Traceback" not in gone.stderr


def test_totals_after_a_redis_restart_count_each_block_once(cluster: Cluster, counting: CountingProxy) -> None:
    """Issue 10: after a Redis restart the workers republish their holders; the status counts each block once."""
    bucket = cluster.bucket("restart")
    data = put(cluster, bucket, "sixty-four.bin", 64 * MiB)
    read(f"{cluster.url}/{bucket}/sixty-four.bin", data)
    endpoint = cluster.workers["w0"].url
    before = totals(rows(wait_totals(endpoint, 64), time.time()))
    assert before.blocks == 64
    client = cluster.redis.client()
    assert sum(client.scard(k) for k in client.scan_iter("s3cache:blk:*")) == 64  # type: ignore[misc]

    pid = cluster.redis.proc.pid if cluster.redis.proc else None
    cluster.redis.restart()  # stopped by its PID and started again on the same port: every key is gone
    assert cluster.redis.proc is not None and cluster.redis.proc.pid != pid
    deadline = time.monotonic() + 15
    client = cluster.redis.client()
    while sum(client.scard(k) for k in client.scan_iter("s3cache:blk:*")) < 64:  # type: ignore[misc]
        assert time.monotonic() < deadline, "the holders were not republished"
        time.sleep(0.2)
    after_report = wait_totals(endpoint, 64)
    after = totals(rows(after_report, time.time()))
    assert (after.blocks, after.used) == (before.blocks, before.used)
    assert warnings(after_report, time.time()) == []
    assert len(list(client.scan_iter("s3cache:blk:*"))) == 64
    assert sum(client.scard(k) for k in client.scan_iter("s3cache:blk:*")) == 64  # type: ignore[misc]

    counting.reset()
    for wid in WORKER_IDS:  # the republished map sends every block read to its holder: no block from the origin
        read(f"{cluster.workers[wid].url}/{bucket}/sixty-four.bin", data)
    # The restart dropped the metadata cached (an invalidation may have been missed meanwhile): the object is opened
    # again at the origin, but no block range is fetched again.
    assert [g for g in counting.object_gets() if g.range] == []
    final = totals(rows(wait_totals(endpoint, 64), time.time()))
    assert (final.blocks, final.used) == (64, before.used)
