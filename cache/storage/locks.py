"""Holding a key while a conditional write judges and writes it: the protocol every lock speaks, the in-process
lock, and the one way a store that cannot judge atomically itself (an S3 origin) makes a conditional write.

A cluster holds keys in Redis (``cache.cluster.locks``), a directory store across the processes serving it
(``cache.storage.directory.locks``); a worker alone over an origin holds them here. Whoever waits longer than
``storage.write_lock_wait_s`` for a key is answered 409 ConditionalRequestConflict, as S3 answers a conditional
write that meets a conflicting operation.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, TypeVar

from cache.s3.conditions import conflict, judge
from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta, WriteConditions

T = TypeVar("T")
STRIPES = 256  # in-process locks: keys share one by hash, so the table stays bounded whatever the key count


class KeyLocks(Protocol):
    def hold(self, bucket: str, key: str) -> AbstractAsyncContextManager[None]:
        """Hold (bucket, key) for one write: 409 ConditionalRequestConflict past the wait allowed."""
        ...


async def acquire(lock: asyncio.Lock, wait_s: float) -> None:
    """lock within wait_s, else 409 ConditionalRequestConflict."""
    try:
        await asyncio.wait_for(lock.acquire(), wait_s)
    except TimeoutError:
        raise conflict() from None


class LocalLocks:
    """Keys held within this process (one asyncio lock per stripe of keys)."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._stripes = [asyncio.Lock() for _ in range(STRIPES)]

    def stripe(self, bucket: str, key: str) -> asyncio.Lock:
        return self._stripes[zlib.crc32(f"{bucket}/{key}".encode("utf-8", "surrogatepass")) % STRIPES]

    @asynccontextmanager
    async def hold(self, bucket: str, key: str) -> AsyncIterator[None]:
        lock = self.stripe(bucket, key)
        await acquire(lock, self.wait_s)
        try:
            yield
        finally:
            lock.release()


async def current_or_none(head: Callable[[], Awaitable[ObjectMeta]]) -> ObjectMeta | None:
    """The key's current object, None when there is none."""
    try:
        return await head()
    except S3Error as error:
        if error.code != "NoSuchKey":
            raise
        return None


async def conditional_write(
    locks: KeyLocks, bucket: str, key: str, conditions: WriteConditions,
    head: Callable[[], Awaitable[ObjectMeta]], write: Callable[[], Awaitable[T]],
    settled: Callable[[ObjectMeta], bool] = lambda _: False,
) -> T:
    """write() when the conditions hold for the object head() finds, the key held from the judgement until the write
    is done, so no other conditional write of the key through any worker lands in between. settled(current): the
    write has been done already (a Complete retried after its answer was lost) and is let through to say so."""
    if not conditions.given:
        return await write()
    async with locks.hold(bucket, key):
        current = await current_or_none(head)
        if current is None or not settled(current):
            judge(conditions, key, current)
        return await write()
