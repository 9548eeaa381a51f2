"""A cold read is one origin request: the block the client reads first, whose answer carries the metadata.

Counted through a real proxy in front of a moto origin (rig.origin.CountingProxy), against a real worker.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from cache.blocks.reader import block_id
from rig.origin import CountingProxy
from rig.processes import Worker
from rig.redis import RedisServer
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker
from tests.e2e.test_cache import BLOCK, blocks_asked, get, md5, seen_under


def test_a_cold_small_object_costs_one_origin_request_and_a_warm_one_none(
        cached: Worker, counting: CountingProxy, origin_s3: Any, origin_bucket: str) -> None:
    bodies = {f"one/{i}": os.urandom(1000 + i) for i in range(5)}
    for key, body in bodies.items():
        origin_s3.put_object(Bucket=origin_bucket, Key=key, Body=body, ContentType="x/y", Metadata={"n": key})
    s3 = make_client(cached.url)
    counting.reset()
    for key, body in bodies.items():
        response = s3.get_object(Bucket=origin_bucket, Key=key)
        assert response["Body"].read() == body
        assert response["ETag"] == f'"{md5(body)}"' and response["ContentLength"] == len(body)
        assert response["ContentType"] == "x/y" and response["Metadata"] == {"n": key}
    assert [(s.method, s.path) for s in seen_under(counting, origin_bucket)] == \
        [("GET", f"/{origin_bucket}/{key}") for key in bodies]  # no HEAD before any of them
    for key, body in bodies.items():
        assert get(s3, origin_bucket, key) == (body, f'"{md5(body)}"')
        assert s3.head_object(Bucket=origin_bucket, Key=key)["ContentLength"] == len(body)
    assert len(seen_under(counting, origin_bucket)) == len(bodies)  # warm: the origin is not asked again


def test_a_cold_ranged_read_fetches_the_block_it_starts_in_first(
        cached: Worker, counting: CountingProxy, origin_s3: Any, origin_bucket: str) -> None:
    data = os.urandom(3 * BLOCK + 100)
    origin_s3.put_object(Bucket=origin_bucket, Key="mid.bin", Body=data)
    s3 = make_client(cached.url)
    counting.reset()
    start = 2 * BLOCK + 10
    got = s3.get_object(Bucket=origin_bucket, Key="mid.bin", Range=f"bytes={start}-{start + 99}")
    assert got["Body"].read() == data[start:start + 100]
    assert got["ContentRange"] == f"bytes {start}-{start + 99}/{len(data)}"
    asked = blocks_asked(counting, origin_bucket, "mid.bin", len(data))
    assert asked[0] == 2 and asked.count(2) == 1  # the block it starts in, once; read-ahead may add block 3
    assert [s.method for s in seen_under(counting, origin_bucket)].count("HEAD") == 0


def test_a_whole_cold_get_brings_the_checksums_a_ranged_one_lacks(
        cached: Worker, counting: CountingProxy, origin_s3: Any, origin_bucket: str) -> None:
    """A cold read of a whole object asks the origin for it whole, in checksum mode: its one answer carries the
    whole-object checksums. A ranged cold read's answer has none (S3 sends none with a range), so a HEAD in
    checksum mode after it asks the origin once, and then knows."""
    body = b"checksummed " * 100
    whole = origin_s3.put_object(Bucket=origin_bucket, Key="whole.txt", Body=body, ChecksumAlgorithm="SHA256")
    ranged = origin_s3.put_object(Bucket=origin_bucket, Key="ranged.txt", Body=body, ChecksumAlgorithm="SHA256")
    s3 = make_client(cached.url)
    counting.reset()
    got = s3.get_object(Bucket=origin_bucket, Key="whole.txt", ChecksumMode="ENABLED")
    assert got["Body"].read() == body and got["ChecksumSHA256"] == whole["ChecksumSHA256"]
    head = s3.head_object(Bucket=origin_bucket, Key="whole.txt", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == whole["ChecksumSHA256"]
    assert [(s.method, s.range) for s in seen_under(counting, origin_bucket)] == [("GET", None)]

    part = s3.get_object(Bucket=origin_bucket, Key="ranged.txt", Range="bytes=0-9")
    assert part["Body"].read() == body[:10] and "ChecksumSHA256" not in part
    got = s3.get_object(Bucket=origin_bucket, Key="ranged.txt", ChecksumMode="ENABLED")  # whole, checksums asked
    assert got["Body"].read() == body and got["ChecksumSHA256"] == ranged["ChecksumSHA256"]
    for _ in range(2):
        head = s3.head_object(Bucket=origin_bucket, Key="ranged.txt", ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == ranged["ChecksumSHA256"] and head["ContentLength"] == len(body)
    assert [s.method for s in seen_under(counting, origin_bucket)] == ["GET", "GET", "HEAD"]


def test_an_empty_object_and_a_missing_key_cold(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                origin_bucket: str) -> None:
    origin_s3.put_object(Bucket=origin_bucket, Key="empty", Body=b"")
    s3 = make_client(cached.url)
    assert get(s3, origin_bucket, "empty") == (b"", f'"{md5(b"")}"')
    try:
        s3.get_object(Bucket=origin_bucket, Key="absent")
        raise AssertionError("a missing key must not be found")
    except s3.exceptions.NoSuchKey as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_head_bucket_of_a_known_bucket_asks_no_origin(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                      origin_bucket: str) -> None:
    """Triton asks HeadBucket before every folder check: a bucket known to exist is answered by the worker."""
    origin_s3.put_object(Bucket=origin_bucket, Key="model/1/model.onnx", Body=b"weights")
    s3 = make_client(cached.url)
    counting.reset()
    for _ in range(3):
        assert s3.head_bucket(Bucket=origin_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [(s.method, s.path) for s in counting.requests()] == [("HEAD", f"/{origin_bucket}")]
    other = f"{origin_bucket}-2"
    origin_s3.create_bucket(Bucket=other)
    origin_s3.put_object(Bucket=other, Key="k", Body=b"v")
    counting.reset()
    assert get(s3, other, "k")[0] == b"v"  # reading one of its objects shows the bucket exists
    assert s3.head_bucket(Bucket=other)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [s.method for s in counting.requests()] == ["GET"]
    try:
        s3.head_bucket(Bucket=f"{origin_bucket}-absent")
        raise AssertionError("a missing bucket must not be found")
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_listing_cache_is_invalidated_by_a_write_through_any_worker(
        counting: CountingProxy, origin_s3: Any, origin_bucket: str, start_worker: StartWorker,
        tmp_path: Path) -> None:
    """With cache.list_ttl_s on, listings are answered from memory; a write through any worker of the cluster
    drops the bucket's cached listings on every worker before it is answered."""
    redis = RedisServer(tmp_path).start()
    try:
        cluster = ["--redis", redis.url, "--cluster-secret", "s3kr1t"]
        env = {"S3CACHE_CACHE_LIST_TTL_S": "300"}
        first = start_worker(counting.url, *cluster, "--worker-id", "a", env=env)
        second = start_worker(counting.url, *cluster, "--worker-id", "b", env=env)
        _wait_until_both_see_both([first, second])
        one, two = make_client(first.url), make_client(second.url)
        origin_s3.put_object(Bucket=origin_bucket, Key="listed/a", Body=b"a")

        def keys(client: Any) -> list[str]:
            return [o["Key"] for o in client.list_objects_v2(Bucket=origin_bucket, Prefix="listed/").get("Contents", [])]

        assert keys(one) == keys(two) == ["listed/a"]
        counting.reset()
        assert keys(one) == keys(two) == ["listed/a"]
        assert [s for s in counting.requests() if s.method == "GET" and s.path == f"/{origin_bucket}"] == []
        two.put_object(Bucket=origin_bucket, Key="listed/b", Body=b"b")
        assert keys(one) == keys(two) == ["listed/a", "listed/b"]
        one.delete_object(Bucket=origin_bucket, Key="listed/a")
        assert keys(two) == keys(one) == ["listed/b"]
    finally:
        redis.stop()


def test_a_block_read_from_peers_again_and_again_is_copied_locally(
        counting: CountingProxy, origin_s3: Any, origin_bucket: str, start_worker: StartWorker,
        tmp_path: Path) -> None:
    """cache.peer_copy_after_reads = 1: the second time a worker reads a block from a peer, it keeps a copy; the
    origin is still asked once, and the placement map then lists both workers as holders."""
    redis = RedisServer(tmp_path).start()
    try:
        cluster = ["--redis", redis.url, "--cluster-secret", "s3kr1t"]
        env = {"S3CACHE_CACHE_PEER_COPY_AFTER_READS": "1"}
        workers = [start_worker(counting.url, *cluster, "--worker-id", wid, env=env) for wid in ("a", "b")]
        _wait_until_both_see_both(workers)  # else one may still think itself alone, and fill from the origin
        body = os.urandom(100_000)
        put = origin_s3.put_object(Bucket=origin_bucket, Key="hot.bin", Body=body)
        counting.reset()
        for _ in range(3):
            for worker in workers:
                assert get(make_client(worker.url), origin_bucket, "hot.bin")[0] == body
        assert [s.method for s in seen_under(counting, origin_bucket)] == ["GET"]  # one origin request, ever
        bid = block_id(origin_bucket, "hot.bin", put["ETag"].strip('"'), 0, BLOCK)
        deadline = time.monotonic() + 5
        while redis.client().smembers(f"s3cache:blk:{bid}") != {"a", "b"} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert redis.client().smembers(f"s3cache:blk:{bid}") == {"a", "b"}
    finally:
        redis.stop()


def _wait_until_both_see_both(workers: list[Worker], timeout_s: float = 20.0) -> None:
    """Until each worker's snapshot of the live set (refreshed every second) holds both of them (from their logs)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = [re.findall(r"live workers: (.*)$", w.log(), re.MULTILINE) for w in workers]
        if all(lines and lines[-1] == "a, b" for lines in seen):
            return
        time.sleep(0.1)
    raise TimeoutError("the two workers did not see each other")
