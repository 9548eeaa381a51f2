"""awscli (v1, the real `aws` executable) against a real worker: every byte that goes up comes back down."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from rig.processes import ROOT, Worker, s3_env

AWS = str(ROOT / ".venv" / "bin" / "aws")
BIG = 9 * 1024 * 1024 + 12345  # > 8 MiB: awscli's multipart threshold, and not a multiple of its part size


def aws(worker: Worker, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([AWS, *args], env=s3_env(worker.url), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_tree(root: Path) -> dict[str, bytes]:
    """A tree with nesting, a multipart-sized file, empty files and awkward names; returns key -> bytes."""
    rng = hashlib.sha256(b"seed")
    big = bytearray()
    while len(big) < BIG:
        rng.update(b"x")
        big += rng.digest() * 64
    files: dict[str, bytes] = {
        "top.txt": b"top level\n",
        "a/one.bin": bytes(range(256)) * 40,
        "a/b/two.txt": b"two\n" * 100,
        "a/b/c/d/deep.txt": b"deep down",
        "a/empty.txt": b"",
        "empty-top": b"",
        "with space/file name.txt": b"spaces in both\n",
        "non-ascii/h\u00e9llo w\u00f6rld \u65e5\u672c.txt": "caf\u00e9 \u2615\n".encode(),
        "big/large.bin": bytes(big[:BIG]),
    }
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under root, leaving out a bucket's .s3cache system directory."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.relative_to(root).parts[0] != ".s3cache"}


def assert_same_tree(left: Path, right: Path) -> None:
    cmp = filecmp.dircmp(left, right)

    def walk(c: filecmp.dircmp[str], where: str) -> None:
        assert not c.left_only and not c.right_only, (where, c.left_only, c.right_only)
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        assert not mismatch and not errors, (where, mismatch, errors)
        for name, sub in c.subdirs.items():
            walk(sub, f"{where}/{name}")

    walk(cmp, "")


def ls_entries(output: str) -> dict[str, int]:
    """`aws s3 ls --recursive` lines ('2024-01-01 00:00:00       1234 key') -> key -> size."""
    out: dict[str, int] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        _date, _time, size, key = line.split(None, 3)
        out[key] = int(size)
    return out


@pytest.fixture
def bucket_name(worker: Worker) -> str:
    name = f"cli-{uuid.uuid4().hex[:12]}"
    return name


def test_mb_cp_ls_rm_rb(worker: Worker, s3, data_dir: Path, tmp_path: Path, bucket_name: str) -> None:  # type: ignore[no-untyped-def]
    url = f"s3://{bucket_name}"
    made = aws(worker, "s3", "mb", url)
    assert f"make_bucket: {bucket_name}" in made.stdout
    assert (data_dir / bucket_name).is_dir()
    assert bucket_name in aws(worker, "s3", "ls").stdout

    src = tmp_path / "src"
    files = make_tree(src)
    aws(worker, "s3", "cp", "--recursive", "--only-show-errors", str(src), url)

    # What landed under storage is exactly what was sent: the multipart file included.
    for key, data in files.items():
        assert (data_dir / bucket_name / key).read_bytes() == data, key

    # awscli went multipart for the large file (8 MiB parts: two), a single PUT for the rest.
    big = files["big/large.bin"]
    parts = [big[:8 * 1024 * 1024], big[8 * 1024 * 1024:]]
    multipart_etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert s3.head_object(Bucket=bucket_name, Key="big/large.bin")["ETag"] == f'"{multipart_etag}"'
    two_md5 = hashlib.md5(files["a/b/two.txt"]).hexdigest()
    assert s3.head_object(Bucket=bucket_name, Key="a/b/two.txt")["ETag"] == f'"{two_md5}"'

    listed = ls_entries(aws(worker, "s3", "ls", "--recursive", url).stdout)
    assert listed == {key: len(data) for key, data in files.items()}

    # Without --recursive: the top level only, directories as PRE lines.
    top = aws(worker, "s3", "ls", url + "/").stdout.splitlines()
    pres = sorted(line.split(None, 1)[1] for line in top if line.split()[0] == "PRE")
    assert pres == ["a/", "big/", "non-ascii/", "with space/"]
    objs = {line.split(None, 3)[3]: int(line.split(None, 3)[2]) for line in top if line.split()[0] != "PRE"}
    assert objs == {"empty-top": 0, "top.txt": len(files["top.txt"])}
    sub = aws(worker, "s3", "ls", url + "/a/b/").stdout.splitlines()
    assert [line.split() for line in sub if line.split()[0] == "PRE"] == [["PRE", "c/"]]
    assert [line.split(None, 3)[2:] for line in sub if line.split()[0] != "PRE"] == [["400", "two.txt"]]

    dst = tmp_path / "dst"
    aws(worker, "s3", "cp", "--recursive", "--only-show-errors", url, str(dst))
    assert_same_tree(src, dst)
    assert tree_bytes(dst) == files

    # Single-object copies, both directions, to and from names that need encoding.
    name = "non-ascii/h\u00e9llo w\u00f6rld \u65e5\u672c.txt"
    one = tmp_path / "one.txt"
    aws(worker, "s3", "cp", "--only-show-errors", f"{url}/{name}", str(one))
    assert one.read_bytes() == files[name]
    aws(worker, "s3", "cp", "--only-show-errors", str(one), f"{url}/copies/\u00fcber + plus%.txt")
    assert (data_dir / bucket_name / "copies" / "\u00fcber + plus%.txt").read_bytes() == files[name]

    # s3 -> s3 copy of the multipart object (CopyObject or UploadPartCopy, as awscli chooses).
    aws(worker, "s3", "cp", "--only-show-errors", f"{url}/big/large.bin", f"{url}/copies/large-copy.bin")
    assert (data_dir / bucket_name / "copies" / "large-copy.bin").read_bytes() == files["big/large.bin"]

    aws(worker, "s3", "rm", "--recursive", "--only-show-errors", url)
    assert aws(worker, "s3", "ls", "--recursive", url).stdout.strip() == ""
    assert tree_bytes(data_dir / bucket_name) == {}

    aws(worker, "s3", "rb", url)
    assert not (data_dir / bucket_name).exists()
    assert bucket_name not in aws(worker, "s3", "ls").stdout
    gone = aws(worker, "s3", "ls", url, check=False)
    assert gone.returncode != 0 and "NoSuchBucket" in gone.stderr


def test_rb_refuses_non_empty_then_force(worker: Worker, data_dir: Path, tmp_path: Path, bucket_name: str) -> None:
    url = f"s3://{bucket_name}"
    aws(worker, "s3", "mb", url)
    (tmp_path / "f.txt").write_bytes(b"keep")
    aws(worker, "s3", "cp", "--only-show-errors", str(tmp_path / "f.txt"), f"{url}/d/f.txt")
    refused = aws(worker, "s3", "rb", url, check=False)
    assert refused.returncode != 0 and "BucketNotEmpty" in refused.stderr
    assert (data_dir / bucket_name / "d" / "f.txt").read_bytes() == b"keep"
    aws(worker, "s3", "rb", "--force", url)
    assert not (data_dir / bucket_name).exists()


def test_sync_both_ways_with_delete(worker: Worker, data_dir: Path, tmp_path: Path, bucket_name: str) -> None:
    url = f"s3://{bucket_name}"
    aws(worker, "s3", "mb", url)
    src = tmp_path / "src"
    files = make_tree(src)
    aws(worker, "s3", "sync", "--only-show-errors", str(src), url)
    assert ls_entries(aws(worker, "s3", "ls", "--recursive", url).stdout) == {k: len(v) for k, v in files.items()}

    # A second sync with nothing changed uploads nothing.
    again = aws(worker, "s3", "sync", str(src), url)
    assert again.stdout.strip() == ""

    # Local changes: one file deleted, one changed (size differs), one added; --delete mirrors them.
    (src / "a" / "b" / "two.txt").unlink()
    (src / "top.txt").write_bytes(b"top level, edited\n")
    (src / "a" / "new file.txt").write_bytes(b"new\n")
    out = aws(worker, "s3", "sync", "--delete", "--no-progress", str(src), url).stdout
    assert f"delete: {url}/a/b/two.txt" in out
    assert f"src/top.txt to {url}/top.txt" in out and f"src/a/new file.txt to {url}/a/new file.txt" in out
    assert not (data_dir / bucket_name / "a" / "b" / "two.txt").exists()
    expected = tree_bytes(src)
    listed = ls_entries(aws(worker, "s3", "ls", "--recursive", url).stdout)
    assert listed == {k: len(v) for k, v in expected.items()}
    for key, data in expected.items():
        assert (data_dir / bucket_name / key).read_bytes() == data, key

    # Down: into an empty directory, then remote deletions and additions mirrored locally.
    dst = tmp_path / "dst"
    aws(worker, "s3", "sync", "--only-show-errors", url, str(dst))
    assert_same_tree(src, dst)
    aws(worker, "s3", "rm", "--only-show-errors", f"{url}/with space/file name.txt")
    aws(worker, "s3", "rm", "--only-show-errors", f"{url}/a/empty.txt")
    (tmp_path / "extra.bin").write_bytes(os.urandom(3000))
    aws(worker, "s3", "cp", "--only-show-errors", str(tmp_path / "extra.bin"), f"{url}/a/b/c/extra.bin")
    (dst / "local-only.txt").write_bytes(b"only here")
    out = aws(worker, "s3", "sync", "--delete", "--no-progress", url, str(dst)).stdout
    assert "delete: " in out and "local-only.txt" in out
    assert not (dst / "with space" / "file name.txt").exists()
    assert not (dst / "a" / "empty.txt").exists()
    assert not (dst / "local-only.txt").exists()
    assert (dst / "a" / "b" / "c" / "extra.bin").read_bytes() == (tmp_path / "extra.bin").read_bytes()
    remote = tree_bytes(data_dir / bucket_name)
    assert tree_bytes(dst) == remote
    assert ls_entries(aws(worker, "s3", "ls", "--recursive", url).stdout) == {k: len(v) for k, v in remote.items()}


def test_s3api_head_and_get_object(worker: Worker, tmp_path: Path, bucket_name: str) -> None:
    aws(worker, "s3api", "create-bucket", "--bucket", bucket_name)
    body = b"s3api body \x00\xff\n" * 321
    src = tmp_path / "body.bin"
    src.write_bytes(body)
    key = "dir/\u00e9l\u00e8ve key.bin"
    put = json.loads(aws(worker, "s3api", "put-object", "--bucket", bucket_name, "--key", key, "--body", str(src),
                         "--content-type", "application/x-test", "--metadata", "colour=blue").stdout)
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"'

    head = json.loads(aws(worker, "s3api", "head-object", "--bucket", bucket_name, "--key", key).stdout)
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == f'"{md5}"'
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"colour": "blue"}

    out = tmp_path / "out.bin"
    got = json.loads(aws(worker, "s3api", "get-object", "--bucket", bucket_name, "--key", key, str(out)).stdout)
    assert out.read_bytes() == body
    assert got["ContentLength"] == len(body) and got["ETag"] == f'"{md5}"'
    assert got["Metadata"] == {"colour": "blue"}

    part = tmp_path / "part.bin"
    ranged = json.loads(aws(worker, "s3api", "get-object", "--bucket", bucket_name, "--key", key,
                            "--range", "bytes=100-199", str(part)).stdout)
    assert part.read_bytes() == body[100:200]
    assert ranged["ContentRange"] == f"bytes 100-199/{len(body)}"

    missing = aws(worker, "s3api", "head-object", "--bucket", bucket_name, "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr
    aws(worker, "s3api", "delete-object", "--bucket", bucket_name, "--key", key)
    aws(worker, "s3api", "delete-bucket", "--bucket", bucket_name)
