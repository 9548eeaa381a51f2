"""Keys held across the cluster while a conditional write judges and writes them: a Redis lock per object.

    <ns>:lock:{<bucket>/<key>}   STRING a random token of the holder, expiring after LOCK_TTL_S unless renewed

Taken with SET NX PX, renewed every third of its TTL while the write goes on (a large upload outlasts one TTL),
released by a script that deletes it only while it still holds the holder's token. The hash tag puts it in one
slot of a Redis Cluster. Waiters of one worker queue on an in-process lock first, so each worker polls Redis
for a key at most once at a time. Redis out of reach: the conditional write is refused (503), never made unguarded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cache.cluster.connect import ERRORS, Client
from cache.s3.conditions import conflict
from cache.s3.errors import S3Error
from cache.storage.locks import LocalLocks, acquire

LOCK_TTL_S = 30.0
_POLL_S = (0.002, 0.05)  # first and longest pause between two tries of a key another worker holds
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"


class RedisLocks:
    def __init__(self, redis: Client, namespace: str, wait_s: float) -> None:
        self.redis, self.ns, self.wait_s = redis, namespace, wait_s
        self._local = LocalLocks(wait_s)

    @asynccontextmanager
    async def hold(self, bucket: str, key: str) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.wait_s
        local = self._local.stripe(bucket, key)
        await acquire(local, self.wait_s)
        try:
            name, token = f"{self.ns}:lock:{{{bucket}/{key}}}", secrets.token_hex(16)
            await self._take(name, token, deadline)
            renewing = asyncio.ensure_future(self._renew(name, token))
            try:
                yield
            finally:
                renewing.cancel()
                try:
                    await self.redis.eval(_RELEASE, 1, name, token)
                except ERRORS:  # it expires on its own
                    pass
        finally:
            local.release()

    async def _take(self, name: str, token: str, deadline: float) -> None:
        pause = _POLL_S[0]
        while True:
            try:
                if await self.redis.set(name, token, nx=True, px=int(LOCK_TTL_S * 1000)):
                    return
            except ERRORS as exc:
                raise S3Error("ServiceUnavailable", f"A conditional write needs the cluster's Redis, which is out "
                              f"of reach: {exc}") from None
            if time.monotonic() + pause > deadline:
                raise conflict()
            await asyncio.sleep(pause)
            pause = min(pause * 2, _POLL_S[1])

    async def _renew(self, name: str, token: str) -> None:
        while True:
            await asyncio.sleep(LOCK_TTL_S / 3)
            try:
                await self.redis.eval(_RENEW, 1, name, token, str(int(LOCK_TTL_S * 1000)))
            except ERRORS:
                pass  # tried again next time; the write itself fails if Redis stays away
