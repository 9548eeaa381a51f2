"""The Redis placement map shared by the workers: membership and block holders.

Keys (``<ns>`` is the namespace, "s3cache" by default)::

    <ns>:workers                 ZSET  worker id -> expiry (unix s): the live set is what has not expired
    <ns>:worker:<id>             HASH  url, started, heartbeat (unix s), heartbeat_ttl_s, the worker's stats (capacity,
                                       used, blocks, hits, misses, bytes served by source, requests/s...), the
                                       Redis master it writes to and its last failover (expires with the heartbeat)
    <ns>:seen                    HASH  worker id -> url and last heartbeat (JSON): what `s3cache status` flags when a
                                       worker stops heartbeating without leaving; a worker that leaves removes itself
    <ns>:config                  HASH  block_size_bytes: the cluster's, recorded by the first member to join
    <ns>:blk:<block id>          SET   ids of the workers holding that block

Object metadata shared between the workers, and its invalidation on a write, ride on the same client and
namespace: ``cache.cluster.shared`` holds them (and their keys), and the registry delegates get_meta,
put_meta and invalidate to it.

The client is made by ``cache.cluster.connect`` from the URL: one Redis, the master a Sentinel group names, or
a Redis Cluster (where every command below works: the keys of one command share a slot, pipelines are split by
slot by redis-py's cluster client).

Nothing here is on a warm read's path: membership is a snapshot refreshed every second, holder lookups
are cached in memory, fills and evictions are queued and flushed as one pipeline. Redis being down is
survived: calls fail soft (logged once per outage), workers serve from their own cache and the origin,
and on reconnect each worker re-registers, re-publishes the blocks it holds and drops metadata it may
have missed invalidations for. So does a worker whose client now writes to another master (a Sentinel
failover, a Redis Cluster whose primaries changed) though it saw no error: the promoted replica may lack
the last writes the old master took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cache.bounded import Bounded
from cache.cluster.connect import ERRORS, Client, close, connect, is_sentinel, masters, parse
from cache.cluster.shared import ACK_TIMEOUT_S, SharedMetadata
from cache.s3.model import ObjectMeta

log = logging.getLogger("s3cache.registry")

_HOLDER_CACHE_S = 2.0
_HOLDERS_CACHED = 100_000
_FLUSH_EVERY_S = 0.05
_STOP_WAIT_S = 2.0


def _replicas(role: object) -> int:
    """Connected replicas in a ROLE reply (["master", offset, [[host, port, offset], ...]]); 0 from a replica."""
    if isinstance(role, list | tuple) and len(role) >= 3 and role[0] in (b"master", "master"):
        return len(role[2])
    return 0


class BlockSizeMismatch(ValueError):
    """This worker's block size is not the cluster's."""


@dataclass(frozen=True)
class Member:
    id: str
    url: str
    capacity: int
    used: int
    blocks: int
    hits: int
    misses: int


class Registry:
    def __init__(self, url: str, worker_id: str, advertise_url: str, heartbeat_ttl_s: float,
                 namespace: str = "s3cache", stats: Callable[[], dict[str, float]] | None = None,
                 invalidation_timeout_s: float = ACK_TIMEOUT_S) -> None:
        # One Redis, the master a Sentinel group names, or a Redis Cluster: cache.cluster.connect makes the client
        # (with one immediate retry on a fresh connection, so a restart does not flap the worker "down").
        target = parse(url)
        self.redis: Client = connect(target)
        self.url = target.describe()  # what logs and the status page show: the password masked
        self.sentinel = is_sentinel(self.redis)
        self.master: str | None = None  # the master (Sentinel) or primaries (Cluster) written to, when known
        self.replicas = 0  # Sentinel: replicas of the master now (ROLE, each heartbeat); writes WAIT for one
        self.worker_id = worker_id
        self.advertise_url = advertise_url
        self.ttl_s = heartbeat_ttl_s
        self.ns = namespace
        self.stats = stats or (lambda: {})
        self.started = time.time()
        self.failover: tuple[float, str, str] | None = None  # (when, old master, new master): the last one seen
        self.members: dict[str, Member] = {}  # the live snapshot
        self.healthy = False
        self.invalidation_timeout_s = invalidation_timeout_s  # how long a write waits for the others to drop a key
        self.listening = False  # subscribed to invalidations (cache.cluster.shared): writes elsewhere are heard of
        self._outage_logged = False  # one error line per outage, the one Redis is down from the start included
        self._hold_members_until = 0.0  # after Redis came back (maybe empty): keep known workers while they re-register
        self._holders: Bounded[str, tuple[float, list[str]]] = Bounded(_HOLDERS_CACHED)
        self._pending_add: set[str] = set()
        self._pending_remove: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.on_invalidate: Callable[[str, str], None] = lambda bucket, key: None
        self.on_reconnect: Callable[[], Awaitable[Iterable[str]]] | None = None  # -> ids of blocks held
        self.on_membership: Callable[[], None] = lambda: None
        self.registering = False  # set by start(): only workers with cache capacity are placement targets
        self.registering_paused = False  # set by leave(): a stopping worker heartbeats no more
        self._shared = SharedMetadata(self)  # object metadata and invalidation, on this client and namespace

    # ---- lifecycle -----------------------------------------------------------------------------

    async def check_block_size(self, block_size: int) -> None:
        """Blocks are only shared when every member cuts objects the same way: the first member to join
        records its block size, and one with another size is refused. Redis away: checked on a later join."""
        try:
            await self.redis.hsetnx(f"{self.ns}:config", "block_size_bytes", str(block_size))
            agreed = await self.redis.hget(f"{self.ns}:config", "block_size_bytes")
        except ERRORS:
            return
        if agreed is not None and int(agreed) != block_size:
            raise BlockSizeMismatch(f"cache.block_size_bytes: this cluster ({self.url}, namespace {self.ns}) "
                                    f"uses {int(agreed)}-byte blocks, not {block_size}")

    async def start(self, registering: bool, block_size: int = 0) -> None:
        """Join (when registering: a worker with cache capacity) and start the background loops."""
        self.registering = registering
        if block_size:
            await self.check_block_size(block_size)
        await self._heartbeat_once()
        await self._refresh_once()
        self._tasks = [asyncio.create_task(self._loop(self._heartbeat_once, self.ttl_s / 3)),
                       asyncio.create_task(self._loop(self._refresh_once, 1.0)),
                       asyncio.create_task(self._loop(self._flush_once, _FLUSH_EVERY_S)),
                       asyncio.create_task(self._shared.subscribe())]

    async def leave(self) -> None:
        """Stop being a placement target now (heartbeats stop too); in-flight reads still finish here."""
        self.registering_paused = True
        with contextlib.suppress(*ERRORS):
            if self.registering:
                await self._forget_self()
                log.info("left the cluster: %s is no longer a placement target", self.worker_id)

    async def stop(self) -> None:
        """Leave at once: the others stop routing here within their next refresh."""
        self._shared.stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=_STOP_WAIT_S)
            if pending and self._shared.pubsub is not None:
                # redis-py's listen() can swallow a cancel under load: closing its connection ends the wait
                with contextlib.suppress(*ERRORS):
                    await self._shared.pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                await asyncio.wait(pending, timeout=_STOP_WAIT_S)
        # Best effort from here: a connection cut by the cancels above can fail in redis-py in more ways than
        # RedisError (an AttributeError on a half-closed connection, for one); the heartbeat TTL covers a miss.
        with contextlib.suppress(Exception):
            await self._flush_once()
            if self.registering:
                await self._forget_self()
        with contextlib.suppress(Exception):
            await close(self.redis)

    async def _loop(self, step: Callable[[], Awaitable[None]], every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            await step()

    @property
    def trusted(self) -> bool:
        """Whether metadata kept in memory may be served: Redis answers and every write's invalidation reaches
        this worker. Otherwise another worker's write would go unheard, so what is known is asked again."""
        return self.healthy and self.listening

    def down(self, what: str, exc: BaseException) -> None:
        """Redis failed at what: unhealthy until a heartbeat gets through again, logged once per outage."""
        if not self._outage_logged:
            self._outage_logged = True
            log.error("Redis at %s unreachable (%s: %s): serving from local cache and origin until it returns",
                      self.url, what, exc)
        self.healthy = False

    # ---- membership ----------------------------------------------------------------------------

    async def _heartbeat_once(self) -> None:
        if self.registering_paused:
            return
        was_healthy = self.healthy
        lost = False  # this worker was missing from the live set: Redis restarted empty, or the worker expired
        try:
            if self.registering:
                now = time.time()
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(f"{self.ns}:workers", {self.worker_id: now + self.ttl_s})
                    pipe.hset(f"{self.ns}:worker:{self.worker_id}", mapping=self._record(now))
                    pipe.expire(f"{self.ns}:worker:{self.worker_id}", int(self.ttl_s * 2) + 1)
                    pipe.hset(f"{self.ns}:seen", self.worker_id,
                              json.dumps({"url": self.advertise_url, "heartbeat": now, "started": self.started}))
                    lost = bool((await pipe.execute())[0])  # ZADD counts members it added
            else:
                await self.redis.ping()
            if self.sentinel:
                self.replicas = _replicas(await self.redis.execute_command("ROLE"))
        except ERRORS as exc:
            self.down("heartbeat", exc)
            return
        self.healthy = True
        self._outage_logged = False
        master, was = masters(self.redis), self.master
        moved = master is not None and was is not None and master != was  # a failover, noticed or not
        if master is not None:
            self.master = master
        if moved:
            log.warning("Redis at %s: the master is now %s (was %s)", self.url, master, was)
            self.failover = (time.time(), str(was), str(master))
        if not was_healthy or lost or moved:  # a Redis restart between two heartbeats is noticed here too
            self._hold_members_until = time.monotonic() + self.ttl_s
            if master is None:
                log.info("Redis at %s reachable: joined as %s", self.url, self.worker_id)
            else:
                log.info("Redis at %s reachable: joined as %s (master %s)", self.url, self.worker_id, master)
            await self._rejoin()

    def _record(self, now: float) -> dict[Any, str]:  # Any: redis-py types its keys as a wide union
        """This worker's hash in Redis: its stats and where it stands (numbers as Redis strings)."""
        record = {"url": self.advertise_url, "started": f"{self.started:.3f}", "heartbeat": f"{now:.3f}",
                  "heartbeat_ttl_s": f"{self.ttl_s:g}", "master": self.master or ""}
        record.update({k: str(int(v)) if float(v).is_integer() else f"{v:.3f}" for k, v in self.stats().items()})
        if self.failover is not None:
            record.update(failover_at=f"{self.failover[0]:.3f}", failover_from=self.failover[1])
        return record

    async def _forget_self(self) -> None:
        """Leave the live set and the seen record: a worker that stops on purpose is not a missing one."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"{self.ns}:workers", self.worker_id)
            pipe.delete(f"{self.ns}:worker:{self.worker_id}")
            pipe.hdel(f"{self.ns}:seen", self.worker_id)
            await pipe.execute()

    async def _rejoin(self) -> None:
        """After an outage (or a Redis restart that lost everything): republish what this worker holds."""
        self._holders.clear()
        self.on_invalidate("", "")  # any invalidation may have been missed: drop all cached metadata
        if self.on_reconnect is None or not self.registering:
            return
        held = list(await self.on_reconnect())
        try:
            for start in range(0, len(held), 1000):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for block in held[start:start + 1000]:
                        pipe.sadd(f"{self.ns}:blk:{block}", self.worker_id)
                    await pipe.execute()
        except ERRORS as exc:
            self.down("republishing blocks", exc)

    async def _refresh_once(self) -> None:
        try:
            now = time.time()
            key = f"{self.ns}:workers"
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrangebyscore(key, now, "+inf")
                _, ids = await pipe.execute()
            ids = [i.decode() if isinstance(i, bytes) else i for i in ids]
            async with self.redis.pipeline(transaction=False) as pipe:
                for worker in ids:
                    pipe.hgetall(f"{self.ns}:worker:{worker}")
                infos = await pipe.execute()
        except ERRORS as exc:
            self.down("membership refresh", exc)
            return
        members = {}
        for worker, info in zip(ids, infos, strict=True):
            fields = {k.decode(): v.decode() for k, v in info.items()}
            if "url" in fields:
                members[worker] = Member(worker, fields["url"], int(fields.get("capacity_bytes", 0)),
                                         int(fields.get("used_bytes", 0)), int(fields.get("blocks", 0)),
                                         int(fields.get("hits", 0)), int(fields.get("misses", 0)))
        if self.registering and not self.registering_paused and self.worker_id not in members:
            self._hold_members_until = time.monotonic() + self.ttl_s  # Redis lost the live set (a restart)
        if time.monotonic() < self._hold_members_until:
            # The others re-register within a heartbeat; an empty or partial set meanwhile would make this
            # worker the owner of their blocks and fetch them from the origin again.
            members = {**self.members, **members}
        changed = set(members) != set(self.members)
        self.members = members
        if changed:
            log.info("live workers: %s", ", ".join(sorted(members)) or "none")
            self.on_membership()

    # ---- placement map -------------------------------------------------------------------------

    def held(self, block_id: str) -> None:
        self._pending_remove.discard(block_id)
        self._pending_add.add(block_id)

    def dropped(self, block_id: str) -> None:
        self._pending_add.discard(block_id)
        self._pending_remove.add(block_id)

    async def _flush_once(self) -> None:
        if not (self._pending_add or self._pending_remove) or not self.registering:
            return
        adds, removes = self._pending_add, self._pending_remove
        self._pending_add, self._pending_remove = set(), set()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for block in adds:
                    pipe.sadd(f"{self.ns}:blk:{block}", self.worker_id)
                for block in removes:
                    pipe.srem(f"{self.ns}:blk:{block}", self.worker_id)
                await pipe.execute()
        except ERRORS as exc:
            self.down("placement update", exc)  # republished in full on reconnect

    async def holders(self, block_ids: list[str], fresh: bool = False) -> dict[str, list[str]]:
        """Live workers holding each block (cached for a moment; empty when Redis is away). fresh: ask Redis
        whatever is cached (a read's routing may take a moment-old answer; `load`'s "is it cached yet" may not)."""
        now = time.monotonic()
        found: dict[str, list[str]] = {}
        missing = []
        for block in block_ids:
            hit = None if fresh else self._holders.get(block)
            if hit is not None and hit[0] > now:
                found[block] = hit[1]
            else:
                missing.append(block)
        if missing and self.healthy:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for block in missing:
                        pipe.smembers(f"{self.ns}:blk:{block}")
                    results = await pipe.execute()
            except ERRORS as exc:
                self.down("holder lookup", exc)
                results = [set() for _ in missing]
            for block, members in zip(missing, results, strict=True):
                ids = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
                found[block] = ids
                self._holders.put(block, (now + _HOLDER_CACHE_S, ids))
        for block in missing:
            found.setdefault(block, [])
        return {block: [w for w in ids if w in self.members] for block, ids in found.items()}

    # ---- metadata: shared and invalidated by cache.cluster.shared --------------------------------

    @property
    def invalidations(self) -> int:
        """Invalidations published by this worker."""
        return self._shared.invalidations

    @property
    def unacknowledged(self) -> int:
        """Of those, how many some worker did not acknowledge in time."""
        return self._shared.unacknowledged

    async def get_meta(self, bucket: str, key: str) -> tuple[ObjectMeta | None, str | None]:
        return await self._shared.get_meta(bucket, key)

    async def put_meta(self, bucket: str, meta: ObjectMeta, ttl_s: float, generation: str | None) -> bool:
        return await self._shared.put_meta(bucket, meta, ttl_s, generation)

    async def invalidate(self, bucket: str, *keys: str) -> None:
        await self._shared.invalidate(bucket, *keys)
