"""Small hot objects are served from memory; a change on disk behind the worker's back is never missed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _get(s3, bucket: str, key: str) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["ETag"]


def test_in_place_rewrite_of_the_same_size_is_seen(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="hot.bin", Body=b"A" * 4096)
    for _ in range(3):  # warm: the bytes are now held in memory
        assert _get(s3, bucket, "hot.bin") == (b"A" * 4096, f'"{hashlib.md5(b"A" * 4096).hexdigest()}"')
    path = data_dir / bucket / "hot.bin"
    before = path.stat()
    with open(path, "r+b") as fh:  # same inode, same size: only the mtime tells
        fh.write(b"B" * 4096)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert _get(s3, bucket, "hot.bin") == (b"B" * 4096, f'"{hashlib.md5(b"B" * 4096).hexdigest()}"')


def test_replacement_by_rename_is_seen(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="swap.txt", Body=b"old contents")
    assert _get(s3, bucket, "swap.txt")[0] == b"old contents"
    assert _get(s3, bucket, "swap.txt")[0] == b"old contents"
    tmp = data_dir / bucket / "swap.tmp"
    tmp.write_bytes(b"new contents!")
    os.replace(tmp, data_dir / bucket / "swap.txt")
    body, etag = _get(s3, bucket, "swap.txt")
    assert body == b"new contents!"
    assert etag == f'"{hashlib.md5(b"new contents!").hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="swap.txt", Range="bytes=4-11")["Body"].read() == b"contents"


def test_deleted_on_disk_is_gone(s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="gone.txt", Body=b"here")
    assert _get(s3, bucket, "gone.txt")[0] == b"here"
    (data_dir / bucket / "gone.txt").unlink()
    try:
        s3.get_object(Bucket=bucket, Key="gone.txt")
    except s3.exceptions.NoSuchKey as error:
        assert error.response["Error"]["Code"] == "NoSuchKey"
    else:
        raise AssertionError("a file deleted on disk was still served")


def test_overwrite_through_s3_is_seen_at_once(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for version in range(5):
        body = f"version {version}".encode() * 100
        s3.put_object(Bucket=bucket, Key="v.txt", Body=body)
        assert _get(s3, bucket, "v.txt")[0] == body
        assert _get(s3, bucket, "v.txt")[0] == body
