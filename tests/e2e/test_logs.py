"""The access log as a worker over a moto origin writes it: JSON lines with log.format = "json" (every line of the
worker's log, uvicorn's own too), text by default; the request id the client saw, cache hit/miss and what served the
blocks (origin for a cold read, local for a warm one, - for a request that read none)."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from cache.blocks.reader import Served
from proxy.logs import JsonFormatter
from rig.cluster import ACCESS
from rig.origin import MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker

BANNER = ("s3cache serving ", "  try: ")  # printed to stdout at start: not a log record


def _lines(worker: Worker, until: Any, timeout_s: float = 5.0) -> list[str]:
    """The worker's log lines once until(lines) holds (a request is logged after its response has gone out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [line for line in worker.log().splitlines() if line and not line.startswith(BANNER)]
        if until(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def _stored(*workers: Worker, blocks: int = 1, timeout_s: float = 5.0) -> None:
    """Until the workers hold this many blocks: a fill is written to the store just after its last byte went out, so a
    read right after the cold one could still be served by the fill (from the origin)."""
    deadline = time.monotonic() + timeout_s
    while sum(httpx.get(w.url + "/_s3cache/status").json()["cache"]["blocks"] for w in workers) < blocks:
        assert time.monotonic() < deadline, "the cold read's block was never stored"
        time.sleep(0.05)


def _access(lines: list[str]) -> list[dict[str, Any]]:
    return [record for record in map(json.loads, lines) if record["logger"] == "s3cache.access"]


def test_json_access_log_cold_then_warm(start_worker: StartWorker, moto_origin: MotoOrigin, origin_bucket: str) -> None:
    make_client(moto_origin.url).put_object(Bucket=origin_bucket, Key="dir/k v", Body=b"x" * 5000)
    worker = start_worker(moto_origin.url, env={"S3CACHE_LOG_FORMAT": "json"})
    s3 = make_client(worker.url, "alice")
    ids = []
    for _ in range(2):  # cold, then warm
        got = s3.get_object(Bucket=origin_bucket, Key="dir/k v")
        assert got["Body"].read() == b"x" * 5000
        ids.append(got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"])
        _stored(worker)
    missing = s3.head_object(Bucket=origin_bucket, Key="dir/k v")["ResponseMetadata"]["HTTPHeaders"]
    ids.append(missing["x-amz-request-id"])

    lines = _lines(worker, lambda lines: len([line for line in lines if "s3cache.access" in line]) >= 3)
    access = _access(lines)  # every line parses as JSON, or json.loads raises here
    assert all(set(record) >= {"time", "level", "logger", "message"} for record in map(json.loads, lines))
    assert any(record["logger"].startswith("uvicorn") for record in map(json.loads, lines))  # uvicorn's lines too
    by_id = {record["request_id"]: record for record in access}
    cold, warm, head = (by_id[request_id] for request_id in ids)
    common = {"user": "alice", "bucket": origin_bucket, "key": "dir/k v", "status": 200, "level": "INFO"}
    assert cold == {**cold, **common, "operation": "GetObject", "bytes": 5000, "cache": "miss", "served_by": "origin"}
    assert warm == {**warm, **common, "operation": "GetObject", "bytes": 5000, "cache": "hit", "served_by": "local"}
    assert head == {**head, **common, "operation": "HeadObject", "bytes": 0, "cache": "-", "served_by": "-"}
    assert isinstance(cold["latency_ms"], float) and cold["latency_ms"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", cold["time"])
    assert ids[0] in cold["message"] and "origin" in cold["message"]  # the text line, as the message


def test_json_error_and_unparsed_requests(start_worker: StartWorker, moto_origin: MotoOrigin,
                                          origin_bucket: str) -> None:
    worker = start_worker(moto_origin.url, "--log-level", "debug", env={"S3CACHE_LOG_FORMAT": "json"})
    s3 = make_client(worker.url)
    try:
        s3.get_object(Bucket=origin_bucket, Key=f"absent-{uuid.uuid4().hex}")
    except s3.exceptions.NoSuchKey as error:
        request_id = error.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    lines = _lines(worker, lambda lines: any(request_id in line for line in lines))
    (record,) = [record for record in _access(lines) if record["request_id"] == request_id]
    assert (record["status"], record["served_by"], record["cache"]) == (404, "-", "-")


def test_text_access_log_keeps_its_fields_and_adds_id_cache_and_source(
    start_worker: StartWorker, moto_origin: MotoOrigin, origin_bucket: str
) -> None:
    make_client(moto_origin.url).put_object(Bucket=origin_bucket, Key="t", Body=b"hello")
    worker = start_worker(moto_origin.url)
    s3 = make_client(worker.url, "bob")
    ids = []
    for _ in range(2):  # cold, then warm
        ids.append(s3.get_object(Bucket=origin_bucket, Key="t")["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"])
        _stored(worker)
    lines = _lines(worker, lambda lines: all(any(i in line for line in lines) for i in ids))
    cold, warm = (next(line for line in lines if i in line) for i in ids)
    pattern = (r"\S+ \S+ INFO s3cache\.access bob GetObject {bucket} 't' 200 5 [\d.]+ms {id} {cache} {by}$")
    assert re.match(pattern.format(bucket=origin_bucket, id=ids[0], cache="miss", by="origin"), cold), cold
    assert re.match(pattern.format(bucket=origin_bucket, id=ids[1], cache="hit", by="local"), warm), warm
    assert [match[:6] for match in ACCESS.findall("\n".join(lines))] == [  # rig/cluster.py's parser still reads it
        ("bob", "GetObject", origin_bucket, "'t'", "200", "5")] * 2


def test_json_access_log_names_a_peer(start_worker: StartWorker, moto_origin: MotoOrigin, origin_bucket: str,
                                      tmp_path: Path) -> None:
    """Two workers sharing a Redis: after a cold read, a warm read through the block's holder is served locally and
    one through the other worker by the peer, both cache hits."""
    redis = RedisServer(tmp_path).start()
    try:
        make_client(moto_origin.url).put_object(Bucket=origin_bucket, Key="shared", Body=b"s" * 3000)
        cluster = ["--redis", redis.url, "--cluster-secret", "logs-secret"]
        env = {"S3CACHE_LOG_FORMAT": "json", "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5"}
        workers = [start_worker(moto_origin.url, *cluster, "--worker-id", wid, env=env) for wid in ("a", "b")]

        def settled(lines: list[str]) -> bool:
            live = [r["message"] for r in map(json.loads, lines) if r["message"].startswith("live workers: ")]
            return bool(live) and live[-1] == "live workers: a, b"
        for worker in workers:
            assert settled(_lines(worker, settled, timeout_s=15)), worker.log()

        def read(worker: Worker) -> str:
            got = make_client(worker.url).get_object(Bucket=origin_bucket, Key="shared")
            assert got["Body"].read() == b"s" * 3000
            return str(got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"])

        reads = [(workers[0], read(workers[0]))]
        _stored(*workers)
        reads += [(worker, read(worker)) for worker in workers]
        records = []
        for worker, request_id in reads:
            lines = _lines(worker, lambda lines, i=request_id: any(i in line for line in lines))
            records += [r for r in _access(lines) if r["request_id"] == request_id]
        cold, *warm = ((r["cache"], r["served_by"]) for r in records)
        assert cold in {("miss", "origin"), ("hit", "peer")}  # filled here, or by the owner and read from it
        assert sorted(warm) == [("hit", "local"), ("hit", "peer")]
    finally:
        redis.stop()


def test_what_served_a_request_and_a_json_traceback() -> None:
    """The record's verdicts (mixed when blocks came from more than one place), and a logged exception in JSON."""
    assert (Served().by, Served().cache) == ("-", "-")
    assert (Served(local=2).by, Served(local=2).cache) == ("local", "hit")
    assert (Served(local=1, peer=1).by, Served(local=1, peer=1).cache) == ("mixed", "hit")
    assert (Served(local=1, origin=1).by, Served(local=1, origin=1).cache) == ("mixed", "miss")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("s3cache", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "s3cache", "failed here")
    assert "ValueError: boom" in line["exception"]
