"""Object metadata shared by the workers through Redis, and the invalidation that drops it everywhere on a write.

Keys (``<ns>`` is the registry's namespace; buckets and keys are the origin's, whatever a member's mounts
call them)::

    <ns>:meta:{<bucket>/<key>}   STRING cached object metadata (JSON), expiring after the metadata TTL
    <ns>:gen:{<bucket>/<key>}    STRING the key's write generation, raised by every write through any worker
    <ns>:invalidate              pub/sub channel: {"n": nonce, "b": bucket, "k": [keys]} written through any worker
    <ns>:ack:<nonce>             LIST  one entry per worker that has dropped the key (short-lived)

Read-after-write across workers: a write raises the key's generation, deletes its shared metadata and
publishes the key, then waits (at most ``cluster.invalidation_timeout_s``) until every subscribed worker has acknowledged
dropping it, so no worker answers from the old metadata once the write is answered. Metadata learned from
the origin is stored only if the generation is still the one read before asking (one Lua script): a HEAD
that raced a write can never put the old version back for a whole TTL.

With Sentinel, a write also waits (WAIT, at most ``REPLICA_WAIT_MS``) until a replica has the raised generation
and the deleted metadata, so a failover right after a write cannot bring the old metadata back: the replica
Sentinel promotes is the one furthest along. Redis Cluster: the channel's slot decides the node PUBLISH and
every SUBSCRIBE go to (redis-py's cluster client), so PUBLISH still counts every subscriber; the two keys of
one object share a hash tag, so MGET and the script touch one slot.

It rides on the registry (``cache.cluster.registry``): its Redis client, namespace and health, whose
``on_invalidate`` hears of every key dropped; a failure here marks the registry down like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from cache.cluster import connect
from cache.cluster.connect import ERRORS, Client
from cache.s3.model import ObjectMeta

log = logging.getLogger("s3cache.registry")  # the registry's log, as before the two were split

ACK_TIMEOUT_S = 2.0  # the default of cluster.invalidation_timeout_s: a stalled worker cannot stall writes for longer
_GEN_TTL_MS = 600_000  # a generation only has to outlive one HEAD racing a write
_ACK_TTL_MS = 10_000
_ACK_SLICE_S = 0.5
REPLICA_WAIT_MS = 500  # Sentinel: how long a write waits for a replica to have it (WAIT 1)
# KEYS: meta, gen; ARGV: generation read before the HEAD, record, TTL in ms
_PUT_IF_UNCHANGED = """
if (redis.call('GET', KEYS[2]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class SharedHost(Protocol):
    """What the shared metadata needs of the registry it serves: its Redis client, namespace, worker id and
    health, whether invalidations are heard (set here), the master's replica count (Sentinel: writes wait for
    one when there is one), the hook told of every dropped key, and where to report Redis failing."""

    @property
    def redis(self) -> Client: ...
    @property
    def replicas(self) -> int: ...
    @property
    def ns(self) -> str: ...
    @property
    def worker_id(self) -> str: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def invalidation_timeout_s(self) -> float: ...
    listening: bool  # set here: whether the invalidation channel is subscribed
    @property
    def on_invalidate(self) -> Callable[[str, str], None]: ...
    def down(self, what: str, exc: BaseException) -> None: ...


class SharedMetadata:
    """get_meta/put_meta/invalidate of a registry, which delegates them here, and the invalidation subscriber."""

    def __init__(self, registry: SharedHost) -> None:
        self.registry = registry
        self._put_if_unchanged = registry.redis.register_script(_PUT_IF_UNCHANGED)
        self.pubsub: PubSub | None = None  # the subscriber's, while it listens
        self.invalidations = 0  # published by this worker
        self.unacknowledged = 0  # of those, how many some worker did not acknowledge in time
        self.unreplicated = 0  # of those, how many no replica had within REPLICA_WAIT_MS (Sentinel)
        self.stopping = False  # set by the registry's stop(): the subscriber does not reconnect

    def _meta_key(self, bucket: str, key: str) -> str:
        return f"{self.registry.ns}:meta:{{{bucket}/{key}}}"

    def _gen_key(self, bucket: str, key: str) -> str:
        return f"{self.registry.ns}:gen:{{{bucket}/{key}}}"  # same hash tag as the metadata: one slot for the script

    async def get_meta(self, bucket: str, key: str) -> tuple[ObjectMeta | None, str | None]:
        """The shared metadata of a key, and its write generation (pass it to put_meta); (None, None) when
        Redis is away."""
        if not self.registry.healthy:
            return None, None
        try:
            raw, generation = await self.registry.redis.mget(self._meta_key(bucket, key), self._gen_key(bucket, key))
        except ERRORS as exc:
            self.registry.down("metadata read", exc)
            return None, None
        generation = generation.decode() if isinstance(generation, bytes) else (generation or "0")
        if raw is None:
            return None, generation
        try:
            meta = ObjectMeta.from_json(raw)
        except (ValueError, TypeError, AttributeError):  # another version's record, or not ours: a miss
            log.warning("unreadable shared metadata of %s/%s: asking the origin", bucket, key)
            return None, generation
        return meta, generation

    async def put_meta(self, bucket: str, meta: ObjectMeta, ttl_s: float, generation: str | None) -> bool:
        """Share metadata learned from the origin, unless a write raised the key's generation meanwhile."""
        if not self.registry.healthy or ttl_s <= 0 or generation is None:
            return False
        try:
            stored = await self._put_if_unchanged(
                keys=[self._meta_key(bucket, meta.key), self._gen_key(bucket, meta.key)],
                args=[generation, meta.to_json(), max(1, int(ttl_s * 1000))])
        except ERRORS as exc:
            self.registry.down("metadata write", exc)
            return False
        return bool(stored)

    async def invalidate(self, bucket: str, *keys: str) -> None:
        """A write went through this worker: every worker forgets the keys' metadata before this returns
        (or invalidation_timeout_s has passed: a worker that does not answer is logged, not waited for)."""
        if not keys:
            return
        nonce = uuid.uuid4().hex
        what = f"{bucket}/{keys[0]}" + (f" and {len(keys) - 1} more keys" if len(keys) > 1 else "")
        channel, note = f"{self.registry.ns}:invalidate", json.dumps({"n": nonce, "b": bucket, "k": list(keys)})
        redis = self.registry.redis
        cluster = isinstance(redis, RedisCluster)  # whose pipelines refuse PUBLISH: it is sent after them
        replicated = self.registry.replicas > 0  # Sentinel with a replica: the write is on it before it is answered
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.incr(self._gen_key(bucket, key))
                    pipe.pexpire(self._gen_key(bucket, key), _GEN_TTL_MS)
                    pipe.delete(self._meta_key(bucket, key))
                if not cluster:
                    pipe.publish(channel, note)
                if replicated:
                    pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)  # same connection: waits for the writes above
                results = await pipe.execute()
            subscribers = await redis.publish(channel, note) if cluster else results[-2 if replicated else -1]
            self.invalidations += 1
            if replicated and not results[-1]:
                self.unreplicated += 1
                log.warning("invalidation of %s: no replica had it within %d ms", what, REPLICA_WAIT_MS)
            timeout_s = self.registry.invalidation_timeout_s
            deadline = time.monotonic() + timeout_s
            acked = 0
            while acked < subscribers:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("invalidation of %s: %d of %d workers acknowledged within %.1fs",
                                what, acked, subscribers, timeout_s)
                    self.unacknowledged += 1
                    break
                # in slices shorter than the client's socket timeout, which would take a long wait for a dead Redis
                if await redis.blpop([f"{self.registry.ns}:ack:{nonce}"], timeout=min(left, _ACK_SLICE_S)) is not None:
                    acked += 1
        except ERRORS as exc:
            self.registry.down("invalidation", exc)

    async def subscribe(self) -> None:
        failed = False
        while not self.stopping:
            pubsub: PubSub | None = None
            try:
                pubsub = self.pubsub = await connect.pubsub(self.registry.redis)
                await pubsub.subscribe(f"{self.registry.ns}:invalidate")
                if failed:  # invalidations published while this was away were missed: drop everything
                    failed = False
                    self.registry.on_invalidate("", "")
                self.registry.listening = True
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        note = json.loads(message["data"])
                        nonce, bucket, keys = note["n"], note["b"], note["k"]
                    except (ValueError, KeyError, TypeError):  # not ours to read: drop everything to be safe
                        log.warning("unreadable invalidation %r: dropping all cached metadata", message["data"][:200])
                        self.registry.on_invalidate("", "")
                        continue
                    for key in keys:
                        self.registry.on_invalidate(bucket, key)
                    async with self.registry.redis.pipeline(transaction=False) as pipe:  # dropped: tell the writer
                        pipe.rpush(f"{self.registry.ns}:ack:{nonce}", self.registry.worker_id)
                        pipe.pexpire(f"{self.registry.ns}:ack:{nonce}", _ACK_TTL_MS)
                        await pipe.execute()
            except asyncio.CancelledError:
                raise
            except ERRORS as exc:
                self.registry.listening = False
                if self.stopping:
                    return
                failed = True
                self.registry.down("invalidation channel", exc)
                await asyncio.sleep(0.5)
            finally:
                self.registry.listening = False
                if pubsub is not None:
                    with contextlib.suppress(*ERRORS):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
