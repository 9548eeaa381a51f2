"""A cold read is one origin request: the block the client reads first, whose answer carries the metadata.

Counted through a real proxy in front of a moto origin (rig.origin.CountingProxy), against a real worker.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
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


def test_random_ranged_reads_trigger_no_read_ahead(
        cached: Worker, counting: CountingProxy, origin_s3: Any, origin_bucket: str) -> None:
    """A map-style dataset reads small ranges here and there: each costs the block it lies in, and nothing more
    (read-ahead is for readers that go on where they left off)."""
    data = os.urandom(6 * BLOCK)
    origin_s3.put_object(Bucket=origin_bucket, Key="random.bin", Body=data)
    s3 = make_client(cached.url)
    counting.reset()
    order = [4, 1, 5, 2]  # never where the last read ended
    for index in order:
        start = index * BLOCK + 1000
        got = s3.get_object(Bucket=origin_bucket, Key="random.bin", Range=f"bytes={start}-{start + 65535}")
        assert got["Body"].read() == data[start:start + 65536]
    time.sleep(0.5)  # a read-ahead fill, had one started, would have reached the origin by now
    assert blocks_asked(counting, origin_bucket, "random.bin", len(data)) == order  # blocks 0 and 3 never


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
    """At the defaults listings are answered from memory (cache.list_ttl_s, 60 s); a write through any worker of the
    cluster drops the bucket's cached listings on every worker before it is answered."""
    redis = RedisServer(tmp_path).start()
    try:
        cluster = ["--redis", redis.url, "--cluster-secret", "s3kr1t"]
        first = start_worker(counting.url, *cluster, "--worker-id", "a")
        second = start_worker(counting.url, *cluster, "--worker-id", "b")
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


class _Triton:
    """Triton's S3 filesystem calls for one bucket over boto3 (tests/clients/test_triton.py replays them against a
    cluster, call for call): a HeadBucket before every folder check, ListObjectsV2 by prefix without a delimiter,
    HeadObject for a file's existence and time, whole-object GETs."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket
        self.calls: list[str] = []
        s3.meta.events.register("before-call.s3", lambda model, **_: self.calls.append(model.name))

    def is_directory(self, prefix: str) -> bool:
        self.s3.head_bucket(Bucket=self.bucket)
        return bool(self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix + "/").get("Contents"))

    def contents(self, prefix: str) -> set[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix + "/").get("Contents", [])
        return {o["Key"][len(prefix) + 1:].split("/", 1)[0] for o in listed}

    def read(self, key: str) -> bytes:
        if not self.is_directory(key):
            self.s3.head_object(Bucket=self.bucket, Key=key)
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def load(self, repo: str) -> dict[str, bytes]:
        """The model repository manager: each model's config checked, dated and read, then every file localized."""
        loaded: dict[str, bytes] = {}
        for model in sorted(m for m in self.contents(repo) if self.is_directory(f"{repo}/{m}")):
            self.read(f"{repo}/{model}/config.pbtxt")
            pending = {f"{repo}/{model}/{item}" for item in self.contents(f"{repo}/{model}")}
            while pending:
                path = pending.pop()
                if self.is_directory(path):
                    pending |= {f"{path}/{item}" for item in self.contents(path)}
                else:
                    loaded[path[len(repo) + 1:]] = self.read(path)
        return loaded


def test_a_warm_triton_repository_load_asks_the_origin_nothing(
        counting: CountingProxy, origin_s3: Any, origin_bucket: str, start_worker: StartWorker) -> None:
    """A model repository loaded with Triton's call pattern through a worker at its defaults: listings asked again
    during the cold load are answered from memory (cache.list_ttl_s), and the warm load asks the origin nothing."""
    files = {"resnet/config.pbtxt": b'name: "resnet"', "resnet/1/model.onnx": os.urandom(BLOCK + 4321),
             "resnet/labels.txt": b"cat\ndog\n", "bert/config.pbtxt": b'name: "bert"', "bert/1/model.py": b"pass\n",
             "bert/1/assets/vocab.txt": os.urandom(70_000), "ensemble/config.pbtxt": b'name: "ensemble"'}
    for path, data in files.items():
        origin_s3.put_object(Bucket=origin_bucket, Key=f"models/{path}", Body=data)
    worker = start_worker(counting.url, metadata_ttl=60.0)  # the default TTL (the module's workers trust 2 s)
    counting.reset()
    triton = _Triton(make_client(worker.url), origin_bucket)
    assert triton.load("models") == files
    listed = [s for s in seen_under(counting, origin_bucket) if s.method == "GET" and s.path == f"/{origin_bucket}"]
    assert 0 < len(listed) < triton.calls.count("ListObjectsV2"), "a listing asked again is answered from memory"
    counting.reset()
    triton = _Triton(make_client(worker.url), origin_bucket)
    assert triton.load("models") == files
    assert {"HeadBucket", "ListObjectsV2", "HeadObject", "GetObject"} == set(triton.calls)
    assert counting.requests() == [], "a warm load asks the origin nothing"


def test_a_deleted_bucket_is_not_listed_or_headed_from_memory(
        cached: Worker, counting: CountingProxy, origin_s3: Any) -> None:
    """Its cached listing pages and known existence go with it: the next listing and HeadBucket are the origin's
    NoSuchBucket, not a cached empty page."""
    s3, name = make_client(cached.url), f"gone-{os.urandom(6).hex()}"
    origin_s3.create_bucket(Bucket=name)
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    counting.reset()
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    assert counting.requests() == [], "the listing and the bucket are known"
    s3.delete_bucket(Bucket=name)
    for call in (lambda: s3.list_objects_v2(Bucket=name), lambda: s3.head_bucket(Bucket=name)):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


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
