"""Symbolic links in the data directory never take a client outside a bucket's directory.

A worker over its own data directory, with links planted behind its back: ``data/<bucket> -> outside`` (a bucket
that is a link) and ``data/<bucket>/d -> outside`` (a directory inside a bucket). Every read, write, copy, delete
and listing through either answers 403 AccessDenied (or lists nothing) and leaves the outside directory as it
was, byte for byte; a link that stays inside the bucket is followed, and a link to an ancestor ends a listing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from rig.processes import Worker
from tests.conftest import make_client

SECRET = b"outside the data directory\n"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    workdir = tmp_path_factory.mktemp("symlinks")
    w = Worker(["--data", str(workdir / "data")], workdir).start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def s3(worker: Worker):  # type: ignore[no-untyped-def]
    return make_client(worker.url)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under directory: its bytes and mtime, to prove nothing outside was touched."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else b"<dir>", p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "outside"
    (directory / "sub").mkdir(parents=True)
    (directory / "secret").write_bytes(SECRET)
    (directory / "sub" / "deep").write_bytes(SECRET)
    (directory / "sub" / "empty").mkdir()
    before = _snapshot(directory)
    yield directory
    assert _snapshot(directory) == before, "a request through a link changed the outside directory"


def _code(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def _refused(call) -> None:  # type: ignore[no-untyped-def]
    assert _code(call) in ("AccessDenied", "403")  # HEAD answers carry no body: the status is the code


def _keys(s3, bucket: str, prefix: str = "", delimiter: str = "") -> list[str]:  # type: ignore[no-untyped-def]
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter=delimiter)
    return [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]


@pytest.fixture
def linked_dir(s3, worker: Worker, outside: Path) -> str:  # type: ignore[no-untyped-def]
    """A bucket holding one ordinary object and ``d -> outside``."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="inside/file", Body=b"inside")
    os.symlink(outside, worker.workdir / "data" / bucket / "d")
    return bucket


@pytest.fixture
def linked_bucket(s3, worker: Worker, outside: Path) -> str:  # type: ignore[no-untyped-def]
    """A bucket name whose directory is ``data/<bucket> -> outside``."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    os.symlink(outside, worker.workdir / "data" / bucket)
    return bucket


def test_directory_link_reads_are_refused(s3, linked_dir: str) -> None:  # type: ignore[no-untyped-def]
    for key in ("d/secret", "d/sub/deep", "d", "d/", "d/sub/"):
        _refused(lambda key=key: s3.get_object(Bucket=linked_dir, Key=key))
        _refused(lambda key=key: s3.head_object(Bucket=linked_dir, Key=key))
    _refused(lambda: s3.get_object_tagging(Bucket=linked_dir, Key="d/secret"))
    assert s3.get_object(Bucket=linked_dir, Key="inside/file")["Body"].read() == b"inside"


def test_directory_link_writes_are_refused(s3, linked_dir: str, outside: Path) -> None:  # type: ignore[no-untyped-def]
    for key in ("d/new", "d/secret", "d/sub/new", "d/newdir/file", "d/newmarker/", "d"):
        _refused(lambda key=key: s3.put_object(Bucket=linked_dir, Key=key, Body=b"written through a link"))
    _refused(lambda: s3.put_object_tagging(Bucket=linked_dir, Key="d/secret",
                                           Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}))
    _refused(lambda: s3.create_multipart_upload(Bucket=linked_dir, Key="d/upload"))
    assert not (outside / "new").exists() and not (outside / "newdir").exists()


def test_directory_link_copies_are_refused(s3, linked_dir: str) -> None:  # type: ignore[no-untyped-def]
    _refused(lambda: s3.copy_object(Bucket=linked_dir, Key="stolen", CopySource={"Bucket": linked_dir,
                                                                                 "Key": "d/secret"}))
    _refused(lambda: s3.copy_object(Bucket=linked_dir, Key="d/planted", CopySource={"Bucket": linked_dir,
                                                                                    "Key": "inside/file"}))
    upload = s3.create_multipart_upload(Bucket=linked_dir, Key="assembled")["UploadId"]
    _refused(lambda: s3.upload_part_copy(Bucket=linked_dir, Key="assembled", UploadId=upload, PartNumber=1,
                                         CopySource={"Bucket": linked_dir, "Key": "d/secret"}))
    s3.abort_multipart_upload(Bucket=linked_dir, Key="assembled", UploadId=upload)
    assert _code(lambda: s3.head_object(Bucket=linked_dir, Key="stolen")) == "404"


def test_directory_link_deletes_are_refused(s3, linked_dir: str) -> None:  # type: ignore[no-untyped-def]
    for key in ("d/secret", "d/sub/deep", "d/sub/empty/", "d", "d/"):
        _refused(lambda key=key: s3.delete_object(Bucket=linked_dir, Key=key))
    result = s3.delete_objects(Bucket=linked_dir, Delete={"Objects": [{"Key": "d/secret"}, {"Key": "d/sub/deep"}]})
    assert sorted(e["Code"] for e in result["Errors"]) == ["AccessDenied", "AccessDenied"]


def test_directory_link_is_not_listed(s3, linked_dir: str) -> None:  # type: ignore[no-untyped-def]
    assert _keys(s3, linked_dir) == ["inside/file"]
    assert _keys(s3, linked_dir, delimiter="/") == ["inside/"]
    assert _keys(s3, linked_dir, prefix="d/") == []
    assert _keys(s3, linked_dir, prefix="d/sub/", delimiter="/") == []
    assert _keys(s3, linked_dir, prefix="d") == []


def test_bucket_link_is_refused(s3, linked_bucket: str) -> None:  # type: ignore[no-untyped-def]
    _refused(lambda: s3.get_object(Bucket=linked_bucket, Key="secret"))
    _refused(lambda: s3.head_object(Bucket=linked_bucket, Key="secret"))
    _refused(lambda: s3.put_object(Bucket=linked_bucket, Key="new", Body=b"x"))
    _refused(lambda: s3.put_object(Bucket=linked_bucket, Key="secret", Body=b"x"))
    _refused(lambda: s3.delete_object(Bucket=linked_bucket, Key="secret"))
    _refused(lambda: s3.list_objects_v2(Bucket=linked_bucket))
    _refused(lambda: s3.list_objects(Bucket=linked_bucket))
    _refused(lambda: s3.head_bucket(Bucket=linked_bucket))
    _refused(lambda: s3.delete_bucket(Bucket=linked_bucket))
    _refused(lambda: s3.put_bucket_tagging(Bucket=linked_bucket, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}))
    _refused(lambda: s3.create_multipart_upload(Bucket=linked_bucket, Key="upload"))
    other = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="source", Body=b"source")
    _refused(lambda: s3.copy_object(Bucket=other, Key="stolen", CopySource={"Bucket": linked_bucket,
                                                                            "Key": "secret"}))
    _refused(lambda: s3.copy_object(Bucket=linked_bucket, Key="planted", CopySource={"Bucket": other,
                                                                                     "Key": "source"}))
    assert linked_bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_system_directory_link_is_refused(s3, worker: Worker, outside: Path) -> None:  # type: ignore[no-untyped-def]
    """A bucket whose ``.s3cache`` is a link outside: no staging, sidecar or upload lands there."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    system = worker.workdir / "data" / bucket / ".s3cache"
    if system.exists():
        system.rename(system.with_name("old-system"))
    os.symlink(outside, system)
    _refused(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x"))
    _refused(lambda: s3.create_multipart_upload(Bucket=bucket, Key="k"))
    _refused(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}))


def test_links_inside_the_bucket_are_followed(s3, worker: Worker) -> None:  # type: ignore[no-untyped-def]
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="real/file", Body=b"real")
    root = worker.workdir / "data" / bucket
    os.symlink("real", root / "alias")  # relative, inside
    os.symlink(root / "real" / "file", root / "file-alias")  # absolute, inside
    os.symlink(".", root / "real" / "loop")  # a link to an ancestor: followed for a key, never walked
    os.symlink(".s3cache", root / "system")  # inside the bucket's directory but into its system directory
    assert s3.get_object(Bucket=bucket, Key="alias/file")["Body"].read() == b"real"
    assert s3.get_object(Bucket=bucket, Key="file-alias")["Body"].read() == b"real"
    assert s3.get_object(Bucket=bucket, Key="real/loop/file")["Body"].read() == b"real"
    _refused(lambda: s3.get_object(Bucket=bucket, Key="system/tmp"))
    assert _keys(s3, bucket, prefix="system/") == []
    assert _keys(s3, bucket) == ["alias/file", "file-alias", "real/file"]
    s3.put_object(Bucket=bucket, Key="alias/through", Body=b"via the alias")
    assert (root / "real" / "through").read_bytes() == b"via the alias"
    s3.delete_object(Bucket=bucket, Key="alias/through")
    assert not (root / "real" / "through").exists()
