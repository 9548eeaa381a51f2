"""A Triton model repository on the cluster.

1. Triton's S3 filesystem (``triton-inference-server/core``, ``src/filesystem/implementations/s3.h``) replayed call
   for call with boto3: paths ``s3://host:port/bucket/path``, path style, a HeadBucket before every folder check,
   ListObjectsV2 by prefix without a delimiter (continuation tokens followed), HeadObject for existence and
   modification time, whole-object GETs without Range, no writes. boto3 never follows a 3xx: proxy mode.
2. pyarrow's ``S3FileSystem`` (the AWS SDK for C++, as Triton links it) writes a repository (every write a multipart
   upload with aws-chunked bodies and a checksum trailer), lists it with ``FileSelector(recursive=True)`` and
   reads it back whole and in ranges, in every data path: the SDK follows 307s.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from pyarrow import fs as pafs

from rig.cluster import Cluster
from tests.clients.conftest import BLOCK, assert_redirected, payload, sha256

pytestmark = pytest.mark.slow

MiB = 1 << 20
S3_PATH = re.compile(r"s3://(http://|https://|)([0-9a-zA-Z\-.]+):([0-9]+)/([0-9a-z.\-]+)(((/[0-9a-zA-Z.\-_]+)*)?)")


def repository(tag: str) -> dict[str, bytes]:
    """models/<name>/config.pbtxt, models/<name>/<version>/model.* and friends: path under the repo -> bytes."""
    return {
        "resnet50/config.pbtxt": b'name: "resnet50"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n',
        "resnet50/labels.txt": "\n".join(f"class-{i}" for i in range(1000)).encode(),
        "resnet50/1/model.onnx": payload(3 * BLOCK + 4321, f"{tag}-resnet-1"),  # several cache blocks
        "resnet50/2/model.onnx": payload(BLOCK - 1, f"{tag}-resnet-2"),
        "bert/config.pbtxt": b'name: "bert"\nbackend: "python"\n',
        "bert/1/model.py": b"import triton_python_backend_utils as pb_utils\n",
        "bert/1/assets/vocab.txt": payload(70_000, f"{tag}-vocab"),
        "bert/1/assets/merges.txt": b"",
        "ensemble/config.pbtxt": b'name: "ensemble"\nplatform: "ensemble"\n',
        "ensemble/1/.keep": b"",
    }


# ---- 1. Triton's own call pattern, with boto3 -------------------------------------------------------


class TritonS3:
    """Triton's S3FileSystem, method for method, over a boto3 client; records every call it makes."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.folder_checks = 0
        s3.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, dict(params.get("headers", {}))))

    @staticmethod
    def parse(path: str) -> tuple[str, str]:
        match = S3_PATH.fullmatch(path.rstrip("/"))
        assert match, path
        return match.group(4), match.group(5).lstrip("/")

    def is_directory(self, path: str) -> bool:
        self.folder_checks += 1
        bucket, prefix = self.parse(path)
        self.s3.head_bucket(Bucket=bucket)
        if not prefix:
            return True
        listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
        return bool(listing.get("Contents"))

    def file_exists(self, path: str) -> bool:
        if self.is_directory(path):
            return True
        bucket, key = self.parse(path)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            assert error.response["Error"]["Code"] in ("404", "NoSuchKey"), error.response
            return False
        return True

    def modification_time(self, path: str) -> float:
        if self.is_directory(path):
            return 0
        bucket, key = self.parse(path)
        return float(self.s3.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp())

    def contents(self, path: str) -> set[str]:
        bucket, prefix = self.parse(path)
        full_dir = prefix.rstrip("/") + "/"
        found: set[str] = set()
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": full_dir}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                if obj["Key"] == full_dir:
                    continue
                item = obj["Key"][len(full_dir):].split("/", 1)[0]
                assert item
                found.add(item)
            if not page.get("IsTruncated"):
                return found
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def subdirs(self, path: str) -> set[str]:
        return {item for item in self.contents(path) if self.is_directory(f"{path.rstrip('/')}/{item}")}

    def files(self, path: str) -> set[str]:
        return {item for item in self.contents(path) if not self.is_directory(f"{path.rstrip('/')}/{item}")}

    def read_text_file(self, path: str) -> bytes:
        assert self.file_exists(path), path
        bucket, key = self.parse(path)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def localize(self, path: str, local: Path) -> None:
        """LocalizePath: download a directory tree, one whole-object GET per file."""
        assert self.file_exists(path)
        bucket, _ = self.parse(path)
        local.mkdir()
        pending = {f"{path}/{item}" for item in self.contents(path)}
        while pending:
            current, pending = pending, set()
            for remote in sorted(current):
                target = local / remote[len(path) + 1:]
                if self.is_directory(remote):
                    target.mkdir()
                    pending |= {f"{remote}/{item}" for item in self.contents(remote)}
                else:
                    key = self.parse(remote)[1]
                    target.write_bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def model_repo(cluster: Cluster) -> Iterator[tuple[Cluster, str, dict[str, bytes]]]:
    bucket = cluster.bucket("triton")
    files = repository("boto3")
    s3 = cluster.boto3()
    for path, data in files.items():
        s3.put_object(Bucket=bucket, Key=f"models/{path}", Body=data)
    yield cluster, bucket, files


def test_triton_loads_a_model_repository(model_repo: tuple[Cluster, str, dict[str, bytes]], tmp_path: Path) -> None:
    cluster, bucket, files = model_repo
    triton = TritonS3(cluster.boto3("triton"))
    host_port = cluster.url.split("://", 1)[1]
    repo = f"s3://{host_port}/{bucket}/models"
    assert triton.is_directory(repo)
    assert not triton.is_directory(f"s3://{host_port}/{bucket}/no-such-dir")
    models = triton.subdirs(repo)
    assert models == {"resnet50", "bert", "ensemble"}
    for model in sorted(models):
        base = f"{repo}/{model}"
        assert triton.file_exists(f"{base}/config.pbtxt")
        assert not triton.file_exists(f"{base}/config.missing")
        assert triton.read_text_file(f"{base}/config.pbtxt") == files[f"{model}/config.pbtxt"]
        assert triton.modification_time(f"{base}/config.pbtxt") > 0
        assert triton.modification_time(f"{base}/1") == 0
        versions = triton.subdirs(base)
        assert versions == {p.split("/")[1] for p in files if p.startswith(f"{model}/") and p.count("/") >= 2}
        assert triton.files(base) == {p.split("/")[1] for p in files if p.startswith(f"{model}/") and p.count("/") == 1}
        triton.localize(base, tmp_path / model)
    local = {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert local.keys() == files.keys()
    assert all(sha256(local[p]) == sha256(files[p]) for p in files)
    # the pattern really was Triton's: HeadBucket before every folder check, whole-object GETs, no writes
    names = [name for name, _ in triton.calls]
    assert {"HeadBucket", "ListObjectsV2", "HeadObject", "GetObject"} == set(names)
    assert names.count("HeadBucket") == triton.folder_checks > len(files)
    assert all("Range" not in headers for name, headers in triton.calls if name == "GetObject")
    mine = cluster.access("triton", bucket)
    gets = [a for a in mine if a.operation == "GetObject"]
    assert len(gets) == len(files) + len(models) and {a.status for a in gets} == {200}
    listings = [a for a in mine if a.operation == "ListObjectsV2"]
    assert len(listings) == names.count("ListObjectsV2") and {a.status for a in listings} == {200}
    assert {a.status for a in mine if a.operation == "HeadBucket"} == {200}
    assert {a.status for a in mine if a.operation == "HeadObject"} <= {200, 404}
    assert len({a.worker for a in mine}) == 3


def test_triton_listing_pages_with_continuation(model_repo: tuple[Cluster, str, dict[str, bytes]]) -> None:
    """A repository past one page of a listing (S3 pages at 1000 keys): Triton follows the continuation token."""
    cluster, bucket, _ = model_repo
    s3 = cluster.boto3()
    names = {f"m{i:04d}" for i in range(1005)}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: s3.put_object(Bucket=bucket, Key=f"wide/{n}/config.pbtxt", Body=n.encode()), names))
    triton = TritonS3(cluster.boto3("triton"))
    host_port = cluster.url.split("://", 1)[1]
    assert triton.contents(f"s3://{host_port}/{bucket}/wide") == names
    assert [n for n, _ in triton.calls].count("ListObjectsV2") == 2


# ---- 2. pyarrow's S3 filesystem (the AWS SDK for C++) ---------------------------------------------


def arrow_fs(cluster: Cluster, user: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=cluster.url.split("://", 1)[1], scheme="http", access_key=user,
                             secret_key="secret", region="us-east-1")


@pytest.mark.modes("proxy", "auto", "redirect")
def test_pyarrow_writes_lists_and_reads_a_repository(cluster: Cluster) -> None:
    user = "pyarrow"
    bucket = cluster.bucket("arrow")
    fs = arrow_fs(cluster, user)
    files = {f"{bucket}/models/{path}": data for path, data in repository(f"arrow-{cluster.mode}").items()}
    files[f"{bucket}/models/big/1/model.plan"] = payload(11 * MiB + 3, f"arrow-big-{cluster.mode}")  # > 1 part
    for path, data in files.items():
        with fs.open_output_stream(path) as out:
            for start in range(0, max(len(data), 1), 4 * MiB):
                out.write(data[start:start + 4 * MiB])
    infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/models", recursive=True))
    listed = {i.path: i.size for i in infos if i.type == pafs.FileType.File}
    assert listed == {path: len(data) for path, data in files.items()}
    directories = {i.path for i in infos if i.type == pafs.FileType.Directory}
    assert f"{bucket}/models/resnet50/1" in directories and f"{bucket}/models/bert/1/assets" in directories
    # every write was a multipart upload (pyarrow sends aws-chunked bodies with a checksum trailer)
    writes = [a.operation for a in cluster.access(user, bucket)]
    assert writes.count("CompleteMultipartUpload") == len(files) and "PutObject" not in writes
    assert writes.count("UploadPart") >= len(files) + 1
    [big] = cluster.boto3().list_objects_v2(Bucket=bucket, Prefix="models/big/")["Contents"]
    assert big["ETag"].endswith('-2"') and big["Size"] == 11 * MiB + 3  # pyarrow's parts are 10 MiB
    # read back: whole streams, then random access (ranged GETs), both from every layer of the repository
    for path, data in files.items():
        with fs.open_input_stream(path) as stream:
            assert sha256(stream.read()) == sha256(data), path
        info = fs.get_file_info(path)
        assert info.size == len(data), path
        if len(data) > 10:
            with fs.open_input_file(path) as f:
                assert f.size() == len(data)
                for offset in (len(data) // 2, len(data) - 7, 1):
                    f.seek(offset)
                    assert f.read(100_000) == data[offset:offset + 100_000], (path, offset)
                assert f.read_at(5, 3) == data[3:8]
    if cluster.mode != "redirect":  # the same bytes to boto3 (proxied in auto mode: it never follows a 307)
        s3 = cluster.boto3()
        for path, data in files.items():
            key = path.split("/", 1)[1]
            assert sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == sha256(data)
    assert_redirected(cluster, user, bucket, minimum=5, agent="aws-sdk-cpp/")


@pytest.mark.modes("redirect")
def test_a_307_carries_no_length_or_type_of_its_own(cluster: Cluster) -> None:
    """The AWS SDK for C++ follows a redirect inside curl and keeps the first value of each header it sees: a
    Content-Length on the 307 became the object's size (pyarrow read 337 bytes of a 3 MiB object)."""
    bucket = cluster.bucket("r307")
    data = payload(3 * MiB + 77, "r307")
    cluster.boto3().put_object(Bucket=bucket, Key="x.bin", Body=data)
    seen = 0
    for worker in cluster.workers.values():
        for method in ("GET", "HEAD"):
            r = httpx.request(method, f"{worker.url}/{bucket}/x.bin", timeout=30)
            if r.status_code != 307:
                continue
            seen += 1
            assert "content-length" not in r.headers and "content-type" not in r.headers, r.headers
            followed = httpx.request(method, r.headers["location"], timeout=30)
            assert followed.status_code == 200 and int(followed.headers["content-length"]) == len(data)
    assert seen >= 2, "no worker redirected"
