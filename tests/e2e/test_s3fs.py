"""s3fs (fsspec over aiobotocore) against a real worker: files, ranges, listings and tree operations."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
from s3fs.utils import FileExpired

from rig.processes import Worker

MiB = 1 << 20
BLOCK = 5 * MiB


def pattern(size: int, seed: bytes = b"s3fs") -> bytes:
    """Deterministic, non-repeating-looking bytes: a wrong offset shows up as wrong content."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def make_fs(worker: Worker, **kwargs: object) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        key="tester", secret="secret",
        client_kwargs={"endpoint_url": worker.url, "region_name": "us-east-1"},
        config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
        skip_instance_cache=True, use_listings_cache=False, default_block_size=BLOCK,
        **kwargs,
    )


@pytest.fixture
def fs(worker: Worker) -> s3fs.S3FileSystem:
    return make_fs(worker)


@pytest.fixture
def tree(fs: s3fs.S3FileSystem, bucket: str) -> Iterator[dict[str, bytes]]:
    """A small tree written with pipe(): full path -> bytes."""
    files = {
        f"{bucket}/root.txt": b"root\n",
        f"{bucket}/empty": b"",
        f"{bucket}/dir/a.txt": b"a" * 10,
        f"{bucket}/dir/b.bin": bytes(range(256)),
        f"{bucket}/dir/sub/c.txt": b"c" * 3,
        f"{bucket}/dir/sub/deeper/d.csv": b"x,y\n1,2\n",
        f"{bucket}/other/\u00e9t\u00e9 file.txt": "\u00e9t\u00e9\n".encode(),
    }
    fs.pipe(files)
    yield files


def stored(data_dir: Path, path: str) -> bytes:
    return (data_dir / path).read_bytes()


def test_write_small_and_multipart(worker: Worker, s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fs = make_fs(worker, fixed_upload_size=True)  # parts of exactly block_size, so the ETag is predictable
    small = b"small object \x00\x01\x02\n" * 10
    with fs.open(f"{bucket}/small.bin", "wb") as f:
        f.write(small)
    assert stored(data_dir, f"{bucket}/small.bin") == small
    assert s3.head_object(Bucket=bucket, Key="small.bin")["ETag"] == f'"{hashlib.md5(small).hexdigest()}"'

    large = pattern(12 * MiB + 777)
    with fs.open(f"{bucket}/large.bin", "wb", block_size=BLOCK) as f:
        for start in range(0, len(large), 1_000_003):  # writes that straddle part boundaries
            f.write(large[start:start + 1_000_003])
    assert stored(data_dir, f"{bucket}/large.bin") == large
    head = s3.head_object(Bucket=bucket, Key="large.bin")
    assert head["ContentLength"] == len(large)
    # Three parts (5 MiB, 5 MiB, the rest): a multipart ETag is md5 of the part md5s, "-3".
    parts = [large[:BLOCK], large[BLOCK:2 * BLOCK], large[2 * BLOCK:]]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert head["ETag"] == f'"{expected}"'
    assert fs.cat(f"{bucket}/large.bin") == large
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # Empty file through open('wb').
    with fs.open(f"{bucket}/zero", "wb"):
        pass
    assert stored(data_dir, f"{bucket}/zero") == b""
    assert fs.info(f"{bucket}/zero")["size"] == 0


def test_read_seek_and_ranges(fs: s3fs.S3FileSystem, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    data = pattern(3 * MiB + 12345)
    s3.put_object(Bucket=bucket, Key="r.bin", Body=data)
    for cache_type in ("none", "readahead", "bytes"):
        with fs.open(f"{bucket}/r.bin", "rb", block_size=256 * 1024, cache_type=cache_type) as f:
            assert f.size == len(data)
            assert f.read(10) == data[:10]
            assert f.tell() == 10
            f.seek(MiB + 5)
            assert f.read(1000) == data[MiB + 5:MiB + 1005]
            f.seek(-100, 2)
            assert f.read() == data[-100:]
            assert f.read(10) == b""  # at the end
            f.seek(2 * MiB - 7)
            assert f.read(300_000) == data[2 * MiB - 7:2 * MiB - 7 + 300_000]
            f.seek(-50, 1)
            assert f.read(50) == data[2 * MiB - 7 + 300_000 - 50:2 * MiB - 7 + 300_000]
            f.seek(0)
            assert f.read() == data, cache_type
    assert fs.cat_file(f"{bucket}/r.bin", start=100, end=200) == data[100:200]
    assert fs.cat_file(f"{bucket}/r.bin", start=-10) == data[-10:]
    assert fs.read_block(f"{bucket}/r.bin", MiB, 4096) == data[MiB:MiB + 4096]


def test_read_detects_overwrite_through_if_match(fs: s3fs.S3FileSystem, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """s3fs sends If-Match with the ETag it opened; a changed object must fail the read, not mix versions."""
    first, second = pattern(200_000, b"one"), pattern(200_000, b"two")
    s3.put_object(Bucket=bucket, Key="v.bin", Body=first)
    with fs.open(f"{bucket}/v.bin", "rb", cache_type="none") as f:
        assert f.read(100) == first[:100]
        s3.put_object(Bucket=bucket, Key="v.bin", Body=second)
        f.seek(1000)
        with pytest.raises(FileExpired):
            f.read(100)
    with fs.open(f"{bucket}/v.bin", "rb", cache_type="none") as f:
        f.seek(1000)
        assert f.read(100) == second[1000:1100]


def test_ls_info_exists(fs: s3fs.S3FileSystem, bucket: str, tree: dict[str, bytes]) -> None:
    b = bucket
    assert fs.ls(b) == [f"{b}/dir", f"{b}/empty", f"{b}/other", f"{b}/root.txt"]
    assert fs.ls(f"{b}/dir/") == [f"{b}/dir/a.txt", f"{b}/dir/b.bin", f"{b}/dir/sub"]
    detail = {e["name"]: e for e in fs.ls(f"{b}/dir", detail=True)}
    assert {n: (e["type"], e["size"]) for n, e in detail.items()} == {
        f"{b}/dir/a.txt": ("file", 10), f"{b}/dir/b.bin": ("file", 256), f"{b}/dir/sub": ("directory", 0)}
    assert detail[f"{b}/dir/b.bin"]["ETag"] == f'"{hashlib.md5(bytes(range(256))).hexdigest()}"'
    assert fs.ls(f"{b}/other") == [f"{b}/other/\u00e9t\u00e9 file.txt"]
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{b}/nothing-here")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"no-such-bucket-{uuid.uuid4().hex[:8]}")

    file_info = fs.info(f"{b}/dir/sub/c.txt")
    assert (file_info["type"], file_info["size"], file_info["name"]) == ("file", 3, f"{b}/dir/sub/c.txt")
    assert file_info["ETag"] == f'"{hashlib.md5(b"ccc").hexdigest()}"'
    dir_info = fs.info(f"{b}/dir/sub")
    assert (dir_info["type"], dir_info["size"], dir_info["name"]) == ("directory", 0, f"{b}/dir/sub")
    assert fs.info(b)["type"] == "directory"
    with pytest.raises(FileNotFoundError):
        fs.info(f"{b}/dir/su")  # a prefix of a name, not a directory

    assert fs.exists(f"{b}/dir/a.txt")
    assert fs.exists(f"{b}/dir/sub/deeper")
    assert fs.exists(f"{b}/dir/sub/deeper/")
    assert not fs.exists(f"{b}/dir/missing.txt")
    assert not fs.exists(f"{b}/dir/a.tx")
    assert fs.exists(b)
    assert fs.isfile(f"{b}/empty") and not fs.isdir(f"{b}/empty")
    assert fs.isdir(f"{b}/dir/sub") and not fs.isfile(f"{b}/dir/sub")
    assert not fs.isdir(f"{b}/dir/a.txt") and not fs.isfile(f"{b}/missing")


def test_glob_walk_find_du(fs: s3fs.S3FileSystem, bucket: str, tree: dict[str, bytes]) -> None:
    b = bucket
    assert fs.glob(f"{b}/dir/*.txt") == [f"{b}/dir/a.txt"]
    assert fs.glob(f"{b}/**/*.txt") == sorted(
        [f"{b}/root.txt", f"{b}/dir/a.txt", f"{b}/dir/sub/c.txt", f"{b}/other/\u00e9t\u00e9 file.txt"])
    assert fs.glob(f"{b}/dir/*") == [f"{b}/dir/a.txt", f"{b}/dir/b.bin", f"{b}/dir/sub"]
    assert fs.glob(f"{b}/dir/sub/*/*.csv") == [f"{b}/dir/sub/deeper/d.csv"]

    walked = [(root, sorted(dirs), sorted(files)) for root, dirs, files in fs.walk(b)]
    assert sorted(walked) == sorted([
        (b, ["dir", "other"], ["empty", "root.txt"]),
        (f"{b}/dir", ["sub"], ["a.txt", "b.bin"]),
        (f"{b}/dir/sub", ["deeper"], ["c.txt"]),
        (f"{b}/dir/sub/deeper", [], ["d.csv"]),
        (f"{b}/other", [], ["\u00e9t\u00e9 file.txt"]),
    ])

    assert fs.find(b) == sorted(tree)
    assert fs.find(f"{b}/dir/sub") == [f"{b}/dir/sub/c.txt", f"{b}/dir/sub/deeper/d.csv"]
    assert fs.find(b, maxdepth=1) == [f"{b}/empty", f"{b}/root.txt"]
    assert fs.find(f"{b}/dir", withdirs=True) == sorted(  # s3fs counts the directory itself
        [f"{b}/dir", f"{b}/dir/a.txt", f"{b}/dir/b.bin", f"{b}/dir/sub", f"{b}/dir/sub/c.txt", f"{b}/dir/sub/deeper",
         f"{b}/dir/sub/deeper/d.csv"])
    found = fs.find(b, detail=True)
    assert {n: e["size"] for n, e in found.items()} == {n: len(v) for n, v in tree.items()}
    assert fs.find(f"{b}/di") == []  # a name prefix is not a directory

    assert fs.du(b) == sum(len(v) for v in tree.values())
    assert fs.du(f"{b}/dir", total=False) == {n: len(v) for n, v in tree.items() if n.startswith(f"{b}/dir/")}


def test_cat_pipe(fs: s3fs.S3FileSystem, bucket: str, data_dir: Path, tree: dict[str, bytes]) -> None:
    b = bucket
    for path, data in tree.items():
        assert stored(data_dir, path) == data
        assert fs.cat(path) == data
    assert fs.cat(fs.find(f"{b}/dir")) == {n: v for n, v in tree.items() if n.startswith(f"{b}/dir/")}
    assert fs.cat(f"{b}/dir/*.txt") == {f"{b}/dir/a.txt": b"a" * 10}
    fs.pipe(f"{b}/dir/a.txt", b"replaced")
    assert fs.cat(f"{b}/dir/a.txt") == b"replaced"
    assert stored(data_dir, f"{b}/dir/a.txt") == b"replaced"
    with pytest.raises(FileNotFoundError):
        fs.cat(f"{b}/dir/none.txt")


def test_copy_move_remove(fs: s3fs.S3FileSystem, s3, bucket: str, data_dir: Path,  # type: ignore[no-untyped-def]
                          tree: dict[str, bytes]) -> None:
    b = bucket
    fs.cp_file(f"{b}/dir/b.bin", f"{b}/copy/b.bin")
    assert fs.cat(f"{b}/copy/b.bin") == tree[f"{b}/dir/b.bin"]
    assert fs.cat(f"{b}/dir/b.bin") == tree[f"{b}/dir/b.bin"]

    fs.copy(f"{b}/dir/sub", f"{b}/copied-sub", recursive=True)
    assert fs.find(f"{b}/copied-sub") == [f"{b}/copied-sub/c.txt", f"{b}/copied-sub/deeper/d.csv"]
    assert fs.cat(f"{b}/copied-sub/deeper/d.csv") == tree[f"{b}/dir/sub/deeper/d.csv"]

    fs.mv(f"{b}/root.txt", f"{b}/moved/\u00e9 root.txt")
    assert not fs.exists(f"{b}/root.txt")
    assert not (data_dir / b / "root.txt").exists()
    assert stored(data_dir, f"{b}/moved/\u00e9 root.txt") == b"root\n"

    fs.rm(f"{b}/empty")
    assert not fs.exists(f"{b}/empty")
    assert not (data_dir / b / "empty").exists()

    fs.rm(f"{b}/dir", recursive=True)
    assert not fs.exists(f"{b}/dir")
    assert fs.find(f"{b}/dir") == []
    assert not (data_dir / b / "dir" / "a.txt").exists()
    assert fs.find(b) == sorted([f"{b}/copy/b.bin", f"{b}/copied-sub/c.txt", f"{b}/copied-sub/deeper/d.csv",
                                 f"{b}/moved/\u00e9 root.txt", f"{b}/other/\u00e9t\u00e9 file.txt"])

    # The whole bucket: GetBucketVersioning (not enabled), DeleteObjects, then DeleteBucket.
    fs.rm(b, recursive=True)
    assert not (data_dir / b).exists()
    assert b not in [x["Name"] for x in s3.list_buckets()["Buckets"]]


def test_copy_multipart_object(fs: s3fs.S3FileSystem, bucket: str, data_dir: Path) -> None:
    data = pattern(11 * MiB + 3)
    with fs.open(f"{bucket}/big", "wb", block_size=BLOCK) as f:
        f.write(data[:6 * MiB])  # each write fills the buffer past block_size: one part each
        f.write(data[6 * MiB:])
    fs.cp_file(f"{bucket}/big", f"{bucket}/big-copy")
    assert stored(data_dir, f"{bucket}/big-copy") == data
    assert fs.info(f"{bucket}/big")["ETag"].endswith('-2"')
    assert fs.info(f"{bucket}/big-copy")["size"] == len(data)


def test_append_exclusive_and_metadata(fs: s3fs.S3FileSystem, bucket: str, data_dir: Path) -> None:
    # 'ab' on an object of 5 MiB or more: a multipart upload whose first part copies the object (UploadPartCopy).
    head, tail = pattern(6 * MiB, b"head"), pattern(5 * MiB + 11, b"tail")
    fs.pipe(f"{bucket}/grow", head)
    with fs.open(f"{bucket}/grow", "ab") as f:
        f.write(tail)
    assert stored(data_dir, f"{bucket}/grow") == head + tail
    assert fs.info(f"{bucket}/grow")["ETag"].endswith('-2"')
    fs.pipe(f"{bucket}/small", b"12")  # small: s3fs downloads it and writes it whole again
    with fs.open(f"{bucket}/small", "ab") as f:
        f.write(b"34")
    assert fs.cat(f"{bucket}/small") == b"1234"

    # 'xb' is PutObject with If-None-Match: *; an existing key is FileExistsError and stays as it was.
    with pytest.raises(FileExistsError):
        with fs.open(f"{bucket}/small", "xb") as f:
            f.write(b"no")
    assert stored(data_dir, f"{bucket}/small") == b"1234"
    with fs.open(f"{bucket}/fresh", "xb") as f:
        f.write(b"yes")
    assert fs.cat(f"{bucket}/fresh") == b"yes"

    # setxattr is a CopyObject onto itself with REPLACE; the bytes must survive it.
    fs.setxattr(f"{bucket}/small", colour="red")
    assert fs.metadata(f"{bucket}/small") == {"colour": "red"}
    assert fs.getxattr(f"{bucket}/small", "colour") == "red"
    assert fs.cat(f"{bucket}/small") == b"1234"
    fs.put_tags(f"{bucket}/small", {"team": "cache"})
    assert fs.get_tags(f"{bucket}/small") == {"team": "cache"}
    fs.touch(f"{bucket}/touched")
    assert fs.info(f"{bucket}/touched")["size"] == 0 and stored(data_dir, f"{bucket}/touched") == b""


def test_makedirs_and_buckets(fs: s3fs.S3FileSystem, s3, bucket: str, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    before = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / bucket).rglob("*"))
    fs.makedirs(f"{bucket}/a/b/c", exist_ok=True)
    fs.mkdir(f"{bucket}/x")
    after = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / bucket).rglob("*"))
    assert after == before  # S3 has no directories: nothing was written
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert not fs.exists(f"{bucket}/a/b/c")
    with pytest.raises(FileExistsError):
        fs.makedirs(bucket)

    # A new bucket through mkdir (s3fs sends a CreateBucketConfiguration for us-east-1).
    new = f"fs-{uuid.uuid4().hex[:12]}"
    fs.mkdir(new)
    assert (data_dir / new).is_dir()
    assert fs.exists(new) and fs.ls(new) == []
    fs.pipe(f"{new}/k", b"v")
    fs.rm(f"{new}/k")
    fs.rmdir(new)
    assert not (data_dir / new).exists()
    assert not fs.exists(new)


def test_put_get_local_tree(fs: s3fs.S3FileSystem, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "n" / "m").mkdir(parents=True)
    files = {"one.txt": b"1", "n/two.bin": pattern(70_000), "n/m/three": b"", "n/m/six MiB": pattern(6 * MiB)}
    for rel, data in files.items():
        (src / rel).write_bytes(data)
    fs.put(str(src) + "/", f"{bucket}/up/", recursive=True)
    assert {n[len(bucket) + 4:]: fs.cat(n) for n in fs.find(f"{bucket}/up")} == files
    dst = tmp_path / "dst"
    fs.get(f"{bucket}/up/", str(dst) + "/", recursive=True)
    got = {p.relative_to(dst).as_posix(): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert got == files


def test_version_aware(worker: Worker, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """version_aware=True lists with ListObjectVersions and asks GetBucketVersioning."""
    vfs = make_fs(worker, version_aware=True)
    s3.put_object(Bucket=bucket, Key="d/v.txt", Body=b"versioned?")
    s3.put_object(Bucket=bucket, Key="top", Body=b"t")
    assert vfs.is_bucket_versioned(bucket) is False
    assert vfs.ls(bucket) == [f"{bucket}/d", f"{bucket}/top"]
    assert vfs.find(bucket) == [f"{bucket}/d/v.txt", f"{bucket}/top"]
    versions = vfs.object_version_info(f"{bucket}/d/v.txt")
    assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in versions] == [
        ("d/v.txt", "null", True, 10)]
    with vfs.open(f"{bucket}/d/v.txt", "rb") as f:
        f.seek(4)
        assert f.read() == b"ioned?"
    assert vfs.cat_file(f"{bucket}/d/v.txt?versionId=null") == b"versioned?"
    assert vfs.info(f"{bucket}/d/v.txt?versionId=null")["size"] == 10
