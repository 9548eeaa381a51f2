"""Per-key write locks of a directory store, held across every process serving the directory.

A key hashes to one of STRIPES lock files in its bucket's system directory (``.s3cache/locks/NN``), held with
flock(2) for the few syscalls a commit or a delete takes (and, for a conditional write, its judgement). flock
does not exclude two holders sharing one open file, so each process also holds an asyncio lock per lock file.
A lock file is opened for each hold and closed after it: a worker serving many buckets keeps no descriptors.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cache.s3.conditions import conflict
from cache.storage.directory.layout import BucketPaths, check_no_links
from cache.storage.locks import acquire

STRIPES = 64
_POLL_S = (0.001, 0.05)  # first and longest pause between two tries of a lock another process holds


def _open(paths: BucketPaths, name: str) -> int:
    check_no_links(paths, name)
    os.makedirs(os.path.dirname(name), exist_ok=True)
    return os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


async def _flock(paths: BucketPaths, name: str, deadline: float) -> int:
    """The lock file name, opened and locked; 409 ConditionalRequestConflict past deadline."""
    pause = _POLL_S[0]
    while True:
        fd = _open(paths, name)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() + pause > deadline:
                raise conflict() from None
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_S[1])
            continue
        except BaseException:
            os.close(fd)
            raise
        if os.fstat(fd).st_nlink:
            return fd
        os.close(fd)  # removed while it was opened (its bucket deleted and made again): lock the one there now


class FileLocks:
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, paths: BucketPaths, key: str) -> AsyncIterator[None]:
        """Hold key of the bucket at paths: 409 ConditionalRequestConflict after wait_s."""
        stripe = zlib.crc32(key.encode("utf-8", "surrogatepass")) % STRIPES
        name = f"{paths.system}/locks/{stripe:02x}"
        deadline = time.monotonic() + self.wait_s
        local = self._local.setdefault(name, asyncio.Lock())
        await acquire(local, self.wait_s)
        try:
            fd = await _flock(paths, name, deadline)
            try:
                yield
            finally:
                os.close(fd)  # closing the only descriptor of the lock releases it
        finally:
            local.release()
