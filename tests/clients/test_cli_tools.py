"""Command-line S3 clients against the cluster: the AWS CLI, rclone and s3cmd, real executables.

- AWS CLI (v1, botocore; never follows a 3xx): ``cp --recursive`` up and down, ``sync --delete`` both ways, proxy mode.
- rclone (Go, AWS SDK v1): ListObjects v1, Content-MD5 on uploads, a HEAD after each upload, ``?versionId=null``;
  a tree copied up (single and multipart) and down, ``check --download`` comparing every byte; in every data path,
  since it follows 307s for reads.
- s3cmd (path style through ``--host``/``--host-bucket``, ListObjects v1, HEAD before GET): put (single and
  multipart), ls, get, del, with SigV4 and SigV2; proxy mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rig.cluster import Cluster
from rig.processes import ROOT
from tests.clients.conftest import assert_redirected, client_env, payload, sha256

pytestmark = pytest.mark.slow

MiB = 1 << 20
AWS = str(ROOT / ".venv" / "bin" / "aws")


def make_tree(root: Path, tag: str) -> dict[str, bytes]:
    """Nesting, empty files, awkward names and files over the clients' multipart thresholds; path -> bytes."""
    files = {
        "top.txt": b"top level\n",
        "empty": b"",
        "a/one.bin": payload(70_000, f"{tag}-one"),
        "a/b/c/deep.txt": b"deep down\n",
        "a/empty.txt": b"",
        "with space/file name (1).txt": b"spaces and parentheses\n",
        "non-ascii/caf\u00e9 \u65e5\u672c.txt": "caf\u00e9\n".encode(),
        "big/over-multipart.bin": payload(9 * MiB + 12345, f"{tag}-big"),  # > 8 MiB (awscli), > 5 MiB (others)
        "big/two-blocks.bin": payload(2 * MiB + 1, f"{tag}-two"),
    }
    write_tree(root, files)
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same(got: dict[str, bytes], want: dict[str, bytes]) -> None:
    assert sorted(got) == sorted(want)
    bad = [k for k in want if sha256(got[k]) != sha256(want[k])]
    assert bad == [], f"differ: {bad}"


def run(cmd: list[str], env: dict[str, str], timeout: float = 120) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def remote_tree(cluster: Cluster, bucket: str, prefix: str) -> dict[str, bytes]:
    """What the cluster holds under prefix, read with boto3 (listings, then whole GETs)."""
    s3 = cluster.boto3()
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix):]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return found


# ---- AWS CLI ------------------------------------------------------------------------------------


def test_awscli_cp_recursive_and_sync_delete(cluster: Cluster, tmp_path: Path) -> None:
    env = client_env(cluster, "awscli")
    bucket = cluster.bucket("awscli")
    src = tmp_path / "src"
    files = make_tree(src, "awscli")
    run([AWS, "s3", "cp", "--recursive", "--only-show-errors", str(src), f"s3://{bucket}/tree/"], env)
    assert_same(remote_tree(cluster, bucket, "tree/"), files)
    [big] = [o for o in cluster.boto3().list_objects_v2(Bucket=bucket, Prefix="tree/big/over")["Contents"]]
    assert big["ETag"].endswith('-2"')  # 8 MiB parts: a multipart upload
    down = tmp_path / "down"
    run([AWS, "s3", "cp", "--recursive", "--only-show-errors", f"s3://{bucket}/tree/", str(down)], env)
    assert_same(read_tree(down), files)

    # change the local tree: one file gone, one changed (same size), one new; sync --delete mirrors it
    (src / "a/one.bin").unlink()
    changed = payload(len(files["big/two-blocks.bin"]), "awscli-changed")
    (src / "big/two-blocks.bin").write_bytes(changed)
    (src / "new/fresh.txt").parent.mkdir()
    (src / "new/fresh.txt").write_bytes(b"fresh\n")
    os.utime(src / "big/two-blocks.bin", (2_000_000_000, 2_000_000_000))  # newer than the object: sync sends it
    run([AWS, "s3", "sync", "--delete", "--only-show-errors", str(src), f"s3://{bucket}/tree/"], env)
    want = read_tree(src)
    assert_same(remote_tree(cluster, bucket, "tree/"), want)
    # and down again, into the old copy: the deleted file goes, the changed and new ones arrive
    (down / "stray.txt").write_bytes(b"not in the bucket")
    run([AWS, "s3", "sync", "--delete", "--exact-timestamps", "--only-show-errors", f"s3://{bucket}/tree/", str(down)],
        env)
    assert_same(read_tree(down), want)
    listing = run([AWS, "s3", "ls", "--recursive", f"s3://{bucket}/tree/"], env)
    assert len(listing.splitlines()) == len(want)
    ops = {a.operation for a in cluster.access("awscli", bucket)}
    assert {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "GetObject",
            "ListObjectsV2", "DeleteObject"} <= ops
    assert_redirected(cluster, "awscli", bucket, follower=False)


# ---- rclone -------------------------------------------------------------------------------------


def rclone_env(cluster: Cluster, user: str) -> dict[str, str]:
    env = client_env(cluster, user, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_X_TYPE="s3",
                     RCLONE_CONFIG_X_PROVIDER="Other", RCLONE_CONFIG_X_ENDPOINT=cluster.url,
                     RCLONE_CONFIG_X_FORCE_PATH_STYLE="true", RCLONE_CONFIG_X_ACCESS_KEY_ID=user,
                     RCLONE_CONFIG_X_SECRET_ACCESS_KEY="secret", RCLONE_CONFIG_X_REGION="us-east-1")
    # This machine exports AWS_CA_BUNDLE; rclone's AWS SDK for Go then tries to load it into rclone's own HTTP
    # transport and refuses ("LoadCustomCABundleError ... unsupported transport"). The endpoint is plain HTTP.
    env.pop("AWS_CA_BUNDLE", None)
    return env


@pytest.mark.modes("proxy", "auto", "redirect")
def test_rclone_copies_a_tree_up_and_down(cluster: Cluster, tmp_path: Path) -> None:
    rclone = shutil.which("rclone")
    assert rclone, "rclone is not installed: scripts/system-deps.sh installs it"
    user = "rclone"
    env = rclone_env(cluster, user)
    bucket = cluster.bucket("rclone")
    src = tmp_path / "src"
    files = make_tree(src, f"rclone-{cluster.mode}")
    flags = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--transfers", "4", "--retries", "1"]
    run([rclone, "copy", str(src), f"X:{bucket}/tree", *flags], env)
    if cluster.mode != "redirect":  # boto3 never follows a 307: its own cross-check only where it is proxied
        assert_same(remote_tree(cluster, bucket, "tree/"), files)
    listed = run([rclone, "lsf", "-R", "--files-only", "--format", "ps", "--separator", "|", f"X:{bucket}/tree"], env)
    assert dict(line.split("|") for line in listed.splitlines()) == {k: str(len(v)) for k, v in files.items()}
    # every byte compared by rclone itself (downloads both sides), then a real download compared by us
    run([rclone, "check", "--download", str(src), f"X:{bucket}/tree"], env)
    down = tmp_path / "down"
    run([rclone, "copy", f"X:{bucket}/tree", str(down), *flags], env)
    assert_same(read_tree(down), files)
    # a single file read with a range (rclone cat --offset/--count)
    big = files["big/over-multipart.bin"]
    part = subprocess.run([rclone, "cat", "--offset", str(5 * MiB - 9), "--count", "3000000",
                           f"X:{bucket}/tree/big/over-multipart.bin"], env=env, capture_output=True, timeout=60)
    assert part.returncode == 0, part.stderr
    assert part.stdout == big[5 * MiB - 9:5 * MiB - 9 + 3000000]
    ops = [a.operation for a in cluster.access(user, bucket)]
    assert ops.count("CompleteMultipartUpload") == 1 and ops.count("PutObject") == len(files) - 1
    assert "ListObjects" in ops  # v1
    run([rclone, "purge", f"X:{bucket}/tree"], env)
    assert remote_tree(cluster, bucket, "tree/") == {}
    assert_redirected(cluster, user, bucket, minimum=3, agent="rclone/")


# ---- s3cmd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["v4", "v2"])
def test_s3cmd_put_ls_get_del(cluster: Cluster, tmp_path: Path, signature: str) -> None:
    s3cmd = shutil.which("s3cmd")
    assert s3cmd, "s3cmd is not installed: scripts/system-deps.sh installs it"
    user = f"s3cmd-{signature}"
    host = cluster.url.split("://", 1)[1]
    (tmp_path / "s3cfg").write_text("")  # every setting on the command line
    base = [s3cmd, "-c", str(tmp_path / "s3cfg"), f"--access_key={user}", "--secret_key=secret", f"--host={host}",
            f"--host-bucket={host}", "--no-ssl", "--region=us-east-1", "--multipart-chunk-size-mb=5",
            "--no-progress", *(["--signature-v2"] if signature == "v2" else [])]
    env = client_env(cluster, user)
    bucket = cluster.bucket("s3cmd")
    src = tmp_path / "src"
    files = make_tree(src, f"s3cmd-{signature}")
    run([*base, "put", str(src / "top.txt"), f"s3://{bucket}/single/top.txt"], env)
    run([*base, "put", "--recursive", f"{src}/", f"s3://{bucket}/tree/"], env)
    assert_same(remote_tree(cluster, bucket, "tree/"), files)
    top = run([*base, "ls", f"s3://{bucket}/"], env)
    assert f"DIR  s3://{bucket}/single/" in top and f"DIR  s3://{bucket}/tree/" in top
    listing = run([*base, "ls", "--recursive", f"s3://{bucket}/tree/"], env)
    sizes = {line.split(f"s3://{bucket}/tree/", 1)[1]: int(line.split()[2]) for line in listing.splitlines()}
    assert sizes == {k: len(v) for k, v in files.items()}
    down = tmp_path / "down"
    down.mkdir()
    run([*base, "get", "--recursive", f"s3://{bucket}/tree/", f"{down}/"], env)
    assert_same(read_tree(down), files)
    run([*base, "get", f"s3://{bucket}/single/top.txt", str(tmp_path / "top.txt")], env)
    assert (tmp_path / "top.txt").read_bytes() == files["top.txt"]
    run([*base, "del", f"s3://{bucket}/single/top.txt"], env)
    run([*base, "del", "--recursive", "--force", f"s3://{bucket}/tree/"], env)
    assert run([*base, "ls", "--recursive", f"s3://{bucket}/"], env).strip() == ""
    ops = [a.operation for a in cluster.access(user, bucket)]
    assert ops.count("CompleteMultipartUpload") == 1 and "ListObjects" in ops and "HeadObject" in ops
    assert_redirected(cluster, user, bucket, follower=False)
