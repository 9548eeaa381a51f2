"""Conditional writes racing through several workers: two worker processes over one directory, and a three-worker
cluster (Redis, moto as the origin) raced through two of its workers. Many writers of one key at once: exactly
one `If-None-Match: *` create wins, exactly one `If-Match` replacement of a version wins, the rest are 412 (or
409 when the key stayed held past the wait), and the object is the winner's bytes, read through another worker
and at the origin. A key held past storage.write_lock_wait_s is 409 ConditionalRequestConflict."""

from __future__ import annotations

import concurrent.futures
import fcntl
import os
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cache.storage.directory.locks import STRIPES
from rig.cluster import Cluster
from rig.origin import MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer
from tests.conftest import make_client

WRITERS = 16
LOSERS = ((412, "PreconditionFailed"), (409, "ConditionalRequestConflict"))
SHORT_WAIT = {"S3CACHE_STORAGE_WRITE_LOCK_WAIT_S": "0.5"}


def outcome(call: Any, **kwargs: Any) -> tuple[int, str]:
    try:
        call(**kwargs)
        return 200, ""
    except ClientError as exc:
        response: Any = exc.response
        return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def race(clients: list[Any], bucket: str, key: str, condition: dict[str, str]) -> bytes:
    """WRITERS puts of key at once, spread over clients (one per worker), each with its own bytes and condition;
    returns the one winner's bytes after checking everyone else lost as S3 says."""
    bodies = [f"{i:02d}:{uuid.uuid4().hex}".encode() * 4096 for i in range(WRITERS)]

    def write(i: int) -> tuple[int, str]:
        return outcome(clients[i % len(clients)].put_object, Bucket=bucket, Key=key, Body=bodies[i], **condition)

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        outcomes = list(pool.map(write, range(WRITERS)))
    winners = [i for i, (status, _) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1, outcomes
    assert all(o in LOSERS for o in outcomes if o[0] != 200), outcomes
    return bodies[winners[0]]


def read(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


# ---- two processes serving one directory ---------------------------------------------------------


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Worker]]]:
    root = tmp_path_factory.mktemp("shared-dir")
    workers = []
    try:
        for i in range(2):
            (root / f"w{i}").mkdir()
            workers.append(Worker(["--data", str(root / "data")], root / f"w{i}", env=SHORT_WAIT).start())
        yield root / "data", workers
    finally:
        for w in workers:
            w.stop()


@pytest.mark.parametrize("condition", ["IfNoneMatch", "IfMatch"])
def test_directory_writes_racing_through_two_processes_have_one_winner(
        shared_dir: tuple[Path, list[Worker]], condition: str) -> None:
    clients = [make_client(w.url) for w in shared_dir[1]]
    bucket = f"race-{condition.lower()}"
    clients[0].create_bucket(Bucket=bucket)
    value = "*" if condition == "IfNoneMatch" else clients[0].put_object(Bucket=bucket, Key="k", Body=b"v0")["ETag"]
    winner = race(clients, bucket, "k", {condition: value})
    assert read(clients[0], bucket, "k") == winner and read(clients[1], bucket, "k") == winner
    assert (shared_dir[0] / bucket / "k").read_bytes() == winner


def test_directory_key_held_past_the_wait_is_a_conflict(shared_dir: tuple[Path, list[Worker]]) -> None:
    data, workers = shared_dir
    client = make_client(workers[0].url)
    client.create_bucket(Bucket="held")
    client.put_object(Bucket="held", Key="other", Body=b"x")  # the bucket's system directory exists
    stripe = zlib.crc32(b"k") % STRIPES
    lock = data / "held" / ".s3cache" / "locks" / f"{stripe:02x}"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process in the middle of a write of "k"
        assert outcome(client.put_object, Bucket="held", Key="k", Body=b"new", IfNoneMatch="*") == \
            (409, "ConditionalRequestConflict")
        assert outcome(client.head_object, Bucket="held", Key="k")[0] == 404
    finally:
        os.close(fd)
    client.put_object(Bucket="held", Key="k", Body=b"new", IfNoneMatch="*")
    assert read(client, "held", "k") == b"new"


# ---- a cluster over an S3 origin -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cond-cluster")
    (workdir / "short-wait.toml").write_text("[storage]\nwrite_lock_wait_s = 0.5\n")
    rig = Cluster("proxy", moto_origin, workdir, RedisServer(workdir),
                  extra_args=["--config", str(workdir / "short-wait.toml")])
    try:
        yield rig.start()
    finally:
        rig.stop()


@pytest.mark.parametrize("condition", ["IfNoneMatch", "IfMatch"])
def test_cluster_writes_racing_through_two_workers_have_one_winner(cluster: Cluster, condition: str) -> None:
    bucket = cluster.bucket("race")
    clients = [make_client(cluster.workers[wid].url) for wid in ("w0", "w1")]
    value = "*" if condition == "IfNoneMatch" else clients[0].put_object(Bucket=bucket, Key="k", Body=b"v0")["ETag"]
    winner = race(clients, bucket, "k", {condition: value})
    assert read(make_client(cluster.workers["w2"].url), bucket, "k") == winner
    assert read(make_client(cluster.origin.url), bucket, "k") == winner


def test_cluster_completes_racing_through_two_workers_have_one_winner(cluster: Cluster) -> None:
    """moto does not judge If-Match on a Complete: only the cluster's lock keeps two of these from both winning."""
    bucket = cluster.bucket("complete")
    clients = [make_client(cluster.workers[wid].url) for wid in ("w0", "w1")]
    etag = clients[0].put_object(Bucket=bucket, Key="k", Body=b"v0")["ETag"]
    uploads = []
    for i in range(WRITERS // 2):
        data = f"upload {i} ".encode() * 1000
        upload_id = clients[0].create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        part = clients[0].upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=data)["ETag"]
        uploads.append((data, upload_id, [{"PartNumber": 1, "ETag": part}]))

    def complete(i: int) -> tuple[int, str]:
        _, upload_id, parts = uploads[i]
        return outcome(clients[i % 2].complete_multipart_upload, Bucket=bucket, Key="k", UploadId=upload_id,
                       MultipartUpload={"Parts": parts}, IfMatch=etag)

    with concurrent.futures.ThreadPoolExecutor(len(uploads)) as pool:
        outcomes = list(pool.map(complete, range(len(uploads))))
    winners = [i for i, (status, _) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1, outcomes
    assert all(o in LOSERS for o in outcomes if o[0] != 200), outcomes
    assert read(make_client(cluster.workers["w2"].url), bucket, "k") == uploads[winners[0]][0]
    assert read(make_client(cluster.origin.url), bucket, "k") == uploads[winners[0]][0]


def test_cluster_key_held_past_the_wait_is_a_conflict(cluster: Cluster) -> None:
    bucket = cluster.bucket("held")
    name = f"s3cache:lock:{{{bucket}/k}}"
    redis = cluster.redis.client()
    redis.set(name, "another worker", px=60_000)  # another worker in the middle of a conditional write of "k"
    client = make_client(cluster.workers["w1"].url)
    try:
        assert outcome(client.put_object, Bucket=bucket, Key="k", Body=b"new", IfNoneMatch="*") == \
            (409, "ConditionalRequestConflict")
        assert outcome(client.delete_object, Bucket=bucket, Key="k", IfMatch='"abc"') == \
            (409, "ConditionalRequestConflict")
    finally:
        redis.delete(name)
    client.put_object(Bucket=bucket, Key="k", Body=b"new", IfNoneMatch="*")
    assert read(make_client(cluster.workers["w0"].url), bucket, "k") == b"new"
    assert redis.get(name) is None  # released once the write was done


def test_cluster_without_redis_refuses_conditional_writes_only(cluster: Cluster) -> None:
    """Last of the module: it stops the cluster's Redis (and starts it again, empty)."""
    bucket = cluster.bucket("no-redis")
    client = make_client(cluster.workers["w0"].url)
    cluster.redis.stop()
    try:
        status, code = outcome(client.put_object, Bucket=bucket, Key="k", Body=b"guarded", IfNoneMatch="*")
        assert (status, code) == (503, "ServiceUnavailable")
        assert outcome(client.head_object, Bucket=bucket, Key="k")[0] == 404  # never made unguarded
        client.put_object(Bucket=bucket, Key="k", Body=b"plain")  # a write without a condition needs no lock
        assert read(make_client(cluster.origin.url), bucket, "k") == b"plain"
    finally:
        cluster.redis.start()
