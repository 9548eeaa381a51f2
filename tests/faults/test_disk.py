"""The cache disk failing a running worker (moto behind a counting proxy, real worker processes):

- full (the cache directory on a small tmpfs, filled by another file): reads are whole, served from the origin,
  one log line says why; once the other file is gone, blocks are cached again (a second read asks the origin
  nothing) and one line says so;
- removed (``rm -rf`` of the cache directory): reads are whole, the directory is made again and blocks cached in it.

The tmpfs needs root (mount); without it the disk-full test is skipped and says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.origin import CountingProxy, MotoOrigin
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker
from tests.faults.conftest import seed

MiB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_cache_disk_serves_from_the_origin_and_caching_resumes(
        moto_origin: MotoOrigin, relay: CountingProxy, start_worker: StartWorker, small_disk: Path) -> None:
    objects = {"a": os.urandom(6 * MiB), "b": os.urandom(6 * MiB + 3)}
    bucket = seed(moto_origin, objects)
    cache_dir = small_disk / "blocks"
    worker = start_worker(relay.url, cache_dir=cache_dir, block_size="1M", capacity="64M", metadata_ttl=600.0)
    ballast = small_disk / "ballast"
    with open(ballast, "wb") as fh:  # the disk is full: other data took it
        try:
            while True:
                fh.write(b"\0" * MiB)
                fh.flush()
        except OSError:
            pass
    s3 = make_client(worker.url)
    for _ in range(2):
        for key, data in objects.items():
            assert md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == md5(data)
    assert len(relay.object_gets()) >= 2 * 12  # nothing could be cached: every block came from the origin twice
    log = worker.log()
    assert sum("disk full" in line for line in log.splitlines()) == 1, log[-3000:]
    ballast.unlink()  # space returns
    for key, data in objects.items():
        assert md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == md5(data)
    relay.reset()
    for key, data in objects.items():
        assert md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == md5(data)
    assert relay.object_gets() == []  # cached again
    assert "caching resumed" in worker.log()
    assert "Traceback" not in worker.log() and " ERROR " not in worker.log()


def test_a_cache_directory_removed_under_a_worker_is_made_again(
        moto_origin: MotoOrigin, relay: CountingProxy, start_worker: StartWorker, tmp_path: Path) -> None:
    data = os.urandom(5 * MiB)
    bucket = seed(moto_origin, {"k": data})
    cache_dir = tmp_path / "cache"
    worker = start_worker(relay.url, cache_dir=cache_dir, block_size="1M", metadata_ttl=600.0)
    s3 = make_client(worker.url)
    assert md5(s3.get_object(Bucket=bucket, Key="k")["Body"].read()) == md5(data)
    shutil.rmtree(cache_dir)
    relay.reset()
    assert md5(s3.get_object(Bucket=bucket, Key="k")["Body"].read()) == md5(data)  # from the origin again
    assert len(relay.object_gets()) >= 5
    relay.reset()
    assert md5(s3.get_object(Bucket=bucket, Key="k")["Body"].read()) == md5(data)
    assert relay.object_gets() == []  # cached in the directory made again
    log = worker.log()
    assert sum("was removed: made again" in line for line in log.splitlines()) == 1, log[-3000:]
    assert "Traceback" not in log and " ERROR " not in log
