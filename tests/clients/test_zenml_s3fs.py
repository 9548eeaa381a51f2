"""ZenML's S3 artifact store pattern: s3fs (fsspec over aiobotocore) against the cluster, in every data path.

An artifact store asks GetBucketVersioning when it starts, makes directories (which writes nothing on S3),
writes artifacts small and multipart (>5 MiB), reads them with seeks and ranged GETs that carry ``If-Match``
with the ETag it opened, and browses, copies, renames and removes trees. s3fs follows 307s (aiohttp), so in
redirect mode (and auto, which knows aiobotocore) its reads are redirected to the holder and must still be right.
"""

from __future__ import annotations

import hashlib

import pytest
import s3fs
from s3fs.utils import FileExpired

from rig.cluster import Cluster
from tests.clients.conftest import BLOCK, assert_redirected, payload, sha256

pytestmark = [pytest.mark.slow, pytest.mark.modes("proxy", "auto", "redirect")]

MiB = 1 << 20
USER = "zenml"


def make_fs(cluster: Cluster, user: str = USER) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(key=user, secret="secret", client_kwargs={"endpoint_url": cluster.url,
                                                                       "region_name": "us-east-1"},
                             config_kwargs={"s3": {"addressing_style": "path"}}, skip_instance_cache=True,
                             use_listings_cache=False)


def test_artifact_store_lifecycle(cluster: Cluster) -> None:
    fs = make_fs(cluster)
    bucket = cluster.bucket("zenml")
    root = f"{bucket}/artifacts"
    assert fs.is_bucket_versioned(bucket) is False  # GetBucketVersioning, as the store does at start

    # makedirs writes nothing on S3: the directory exists once something is in it
    fs.makedirs(f"{root}/run-1/step-a", exist_ok=True)
    assert not fs.exists(f"{root}/run-1")
    ops = {a.operation for a in cluster.access(USER, bucket)}
    assert "GetBucketVersioning" in ops and ops <= {"GetBucketVersioning", "HeadBucket", "ListObjectsV2", "HeadObject"}

    small = {f"{root}/run-1/step-a/meta.json": b'{"materializer": "builtins"}',
             f"{root}/run-1/step-a/empty.txt": b"",
             f"{root}/run-1/step-b/output/data.csv": b"a,b\n1,2\n" * 500,
             f"{root}/run-1/step-b/output/nested/deep.bin": payload(BLOCK + 1, "deep")}
    for path, data in small.items():
        with fs.open(path, "wb") as f:
            f.write(data)
    big_path = f"{root}/run-1/model/weights.bin"
    big = payload(13 * MiB + 5, f"zenml-{cluster.mode}")
    with fs.open(big_path, "wb", block_size=5 * MiB) as f:  # parts of 5 MiB: a multipart upload of three
        for start in range(0, len(big), 1 << 20):
            f.write(big[start:start + (1 << 20)])
    files = {**small, big_path: big}
    ops = [a.operation for a in cluster.access(USER, bucket)]
    assert ops.count("CreateMultipartUpload") == 1 and ops.count("CompleteMultipartUpload") == 1, ops
    assert ops.count("UploadPart") >= 3, ops  # the ETag below says three parts

    # info, exists, isdir, ls, glob, walk, find
    info = fs.info(big_path)
    assert info["size"] == len(big) and info["type"] == "file" and info["ETag"].endswith('-3"')
    meta = f"{root}/run-1/step-a/meta.json"
    assert fs.info(meta)["ETag"] == f'"{hashlib.md5(small[meta]).hexdigest()}"'
    assert fs.exists(big_path) and fs.exists(f"{root}/run-1") and not fs.exists(f"{root}/run-2")
    assert fs.isdir(f"{root}/run-1/step-b") and not fs.isdir(big_path) and fs.isfile(big_path)
    assert fs.info(f"{root}/run-1/step-b")["type"] == "directory"
    assert sorted(fs.ls(f"{root}/run-1")) == [f"{root}/run-1/{d}" for d in ("model", "step-a", "step-b")]
    listing = fs.ls(f"{root}/run-1/step-a", detail=True)
    assert {e["name"]: e["size"] for e in listing} == {p: len(d) for p, d in small.items() if "/step-a/" in p}
    assert sorted(fs.glob(f"{root}/run-1/*/*.json")) == [f"{root}/run-1/step-a/meta.json"]
    assert sorted(fs.glob(f"{root}/**/*.bin")) == sorted(p for p in files if p.endswith(".bin"))
    walked = {(d, tuple(sorted(sub)), tuple(sorted(fl))) for d, sub, fl in fs.walk(f"{root}/run-1")}
    assert (f"{root}/run-1/step-b/output", ("nested",), ("data.csv",)) in walked
    assert sorted(fs.find(root)) == sorted(files)
    assert fs.du(root) == sum(len(d) for d in files.values())

    # read back: whole, and with seeks (ranged GETs with If-Match)
    for path, data in files.items():
        assert sha256(fs.cat_file(path)) == sha256(data), path
        with fs.open(path, "rb") as f:
            assert sha256(f.read()) == sha256(data), path
    with fs.open(big_path, "rb", block_size=2 * MiB) as f:
        for offset, length in ((0, 10), (BLOCK - 3, 6), (7 * MiB + 11, 3 * MiB), (len(big) - 100, 1000)):
            f.seek(offset)
            assert f.read(length) == big[offset:offset + length], (offset, length)
        f.seek(-5, 2)
        assert f.read() == big[-5:]
    assert fs.cat_file(big_path, start=5 * MiB - 7, end=9 * MiB) == big[5 * MiB - 7:9 * MiB]

    # copy (CopyObject, multipart one included) and rename (copy + delete)
    fs.copy(big_path, f"{root}/run-2/model/weights.bin")
    fs.copy(f"{root}/run-1/step-b", f"{root}/run-2/step-b", recursive=True)
    fs.mv(f"{root}/run-1/step-a/meta.json", f"{root}/run-2/meta.json")
    assert not fs.exists(f"{root}/run-1/step-a/meta.json")
    assert fs.cat_file(f"{root}/run-2/meta.json") == small[f"{root}/run-1/step-a/meta.json"]
    assert sha256(fs.cat_file(f"{root}/run-2/model/weights.bin")) == sha256(big)
    for path, data in small.items():
        if "/step-b/" in path:
            assert sha256(fs.cat_file(path.replace("run-1", "run-2"))) == sha256(data)

    # rm(recursive=True) takes the whole tree, and nothing is left behind
    fs.rm(f"{root}/run-1", recursive=True)
    assert not fs.exists(f"{root}/run-1") and not fs.exists(big_path)
    assert sorted(fs.find(root)) == sorted([f"{root}/run-2/meta.json", f"{root}/run-2/model/weights.bin",
                                            f"{root}/run-2/step-b/output/data.csv",
                                            f"{root}/run-2/step-b/output/nested/deep.bin"])
    fs.rm(root, recursive=True)
    assert fs.find(bucket) == []
    assert_redirected(cluster, USER, bucket, minimum=3, agent="aiobotocore/")


def test_a_read_never_mixes_versions(cluster: Cluster) -> None:
    """s3fs opened version 1; the object is overwritten through another worker; the next ranged read carries
    If-Match with version 1's ETag, gets 412, and s3fs raises FileExpired instead of returning version 2's bytes."""
    fs = make_fs(cluster)
    bucket = cluster.bucket("zversion")
    path = f"{bucket}/artifact.bin"
    first, second = payload(3 * MiB, "v1"), payload(3 * MiB, "v2")
    fs.pipe_file(path, first)
    with fs.open(path, "rb", block_size=BLOCK, cache_type="none") as f:
        assert f.read(1000) == first[:1000]
        make_fs(cluster, "other-writer").pipe_file(path, second)
        f.seek(2 * MiB)
        with pytest.raises(FileExpired):
            f.read(1000)
    assert sha256(make_fs(cluster).cat_file(path)) == sha256(second)
    statuses = [a.status for a in cluster.access(USER, bucket) if a.operation == "GetObject"]
    assert 412 in statuses
