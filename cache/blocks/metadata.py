"""The block cache in front of an S3 origin: object metadata with a TTL, object bytes through the block store.

It wraps one origin store and speaks the origin's own bucket and key names, so metadata, blocks and
invalidations are shared by every worker and sidecar whatever their mounts call a bucket; the namespace
above it (``cache.storage.namespace``) maps client names to these once per call. Local directories are never
wrapped: they are already local.

Consistency contract: a write through s3cache (PUT, copy, delete, multipart complete, tagging) drops the
key's cached metadata at once, and the new ETag gives new block ids, so old bytes can never be served
for a new version. A change made directly at the origin is seen once the metadata TTL
(``cache.metadata_ttl_s``) has passed; until then the version s3cache knows is served. In a cluster, while
invalidations from other workers cannot arrive (Redis away, the invalidation channel not subscribed) no metadata
is trusted from memory nor shared between opens: each open asks the origin, and blocks of the version it names
are still served from the cache.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from cache.blocks.reader import BlockReader
from cache.bounded import Bounded
from cache.cluster.registry import Registry
from cache.s3.errors import S3Error
from cache.s3.model import (
    UNCONDITIONAL,
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    SentChecksums,
    WriteConditions,
    multipart_etag_parts,
)
from cache.storage.base import Body, DelegatedMultipart, OpenObject, Origin, UnderStore

_META_ENTRIES = 100_000
_LIST_ENTRIES = 1_000


class CachedObject:
    """An object whose bytes come through the block cache."""

    def __init__(self, store: CachedStore, bucket: str, meta: ObjectMeta) -> None:
        self.store, self.bucket = store, bucket
        self.meta = meta  # what the client is told: a namespace above may give the key its mount's name
        self._version = meta  # the origin's key and version, which the blocks are read by

    async def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.store.reader.stream(self.bucket, self._version, start, end, chunk_bytes):
                yield chunk
        except S3Error as error:
            if error.code == "PreconditionFailed":  # the origin has moved on from this version: nobody serves it
                await self.store.invalidate(self.bucket, self._version.key)  # again, here or on another worker
            raise

    async def read_small(self, start: int, end: int) -> bytes:
        return b"".join([c async for c in self.iter_range(start, end, max(1, end - start))])

    def close(self) -> None:
        pass


class CachedStore(DelegatedMultipart):  # the multipart calls go to the origin; completing one invalidates
    def __init__(self, origin: Origin, reader: BlockReader, metadata_ttl_s: float, list_ttl_s: float = 0.0,
                 registry: Registry | None = None):
        self.origin = origin
        self._uploads = origin
        self.registry = registry  # in a cluster: metadata shared through Redis, invalidations published
        self.reader = reader
        self.metadata_ttl_s = metadata_ttl_s
        self.list_ttl_s = list_ttl_s
        self._meta: Bounded[tuple[str, str], tuple[float, ObjectMeta]] = Bounded(_META_ENTRIES)
        self._lists: Bounded[tuple[str, str, str, str, int], tuple[float, ListPage]] = Bounded(_LIST_ENTRIES)
        self._buckets: Bounded[str, float] = Bounded(_LIST_ENTRIES)  # bucket -> until when it is known to exist
        self._learning: dict[tuple[str, str, bool], asyncio.Future[ObjectMeta]] = {}  # (bucket, key, by a HEAD)
        self._generation = 0
        # (bucket, key, etag, part number) -> (start, end, parts count) of a part the origin named
        self._parts: Bounded[tuple[str, str, str, int], tuple[int, int, int | None]] = Bounded(_LIST_ENTRIES)

    def forget(self, bucket: str, key: str) -> None:
        """Drop what this worker knows of a key ("" bucket: of everything)."""
        self._generation += 1  # a HEAD in flight now may describe the old version: it will not be kept
        self._learning.pop((bucket, key, True), None)
        self._learning.pop((bucket, key, False), None)
        if not bucket:
            self._meta.clear()
            self._lists.clear()
            self._buckets.clear()
            return
        self._meta.pop((bucket, key))
        if not key:  # the bucket itself changed (deleted): whether it exists is asked again
            self._buckets.pop(bucket)
        if self._lists:
            for entry in [k for k in self._lists if k[0] == bucket]:
                self._lists.pop(entry)

    async def invalidate(self, bucket: str, *keys: str) -> None:
        """A write went through here: forget the keys, and have every other worker forget them too, before
        the write is answered (read-after-write holds on every worker). The names are the origin's, so a
        worker whose mounts call the bucket differently (a sidecar's input) hears of it too."""
        for key in keys:
            self.forget(bucket, key)
        if self.registry is not None and keys:
            await self.registry.invalidate(bucket, *keys)

    # ---- reads ---------------------------------------------------------------------------------

    def _remembered(self, bucket: str, key: str) -> ObjectMeta | None:
        if self.registry is not None and not self.registry.trusted:
            return None  # writes through other workers cannot be heard of now: ask the origin
        hit = self._meta.get((bucket, key))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        known = self._remembered(bucket, key)
        if known is not None and (known.checksums_known or not checksums):
            return known
        meta = await self._single_flight(bucket, key, None)
        if known is not None and meta.etag != known.etag:
            return known  # the origin moved on behind s3cache's back: the version known is served until its TTL
        return meta

    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> OpenObject:
        """A cold open is one origin request: the block the client reads first, whose answer brings the metadata;
        the block goes on to fill the cache while the client reads it."""
        meta = self._remembered(bucket, key)
        if meta is None:
            heading = self._learning.get((bucket, key, True))  # a HEAD already on its way answers this too
            index = max(0, first_byte or 0) // self.reader.block_size
            meta = await asyncio.shield(heading) if heading is not None else \
                await self._single_flight(bucket, key, index, whole=first_byte is None)
        return CachedObject(self, bucket, meta)

    async def head_part(self, bucket: str, key: str, number: int) -> tuple[ObjectMeta, int, int]:
        """A part read is the origin's own (a HEAD with partNumber names the part's place in the object), asked
        once per version: where a part lies never changes while its ETag does not. An object whose ETag is no
        multipart one ("<md5>-<parts>") is its own part 1, as S3 answers, and a part past the count an ETag
        names is 416 InvalidPartNumber, neither asking the origin."""
        meta = await self.head_object(bucket, key)
        counted = multipart_etag_parts(meta.etag)
        if counted is None:
            if number != 1:
                raise S3Error("InvalidPartNumber")
            return meta, 0, meta.size
        if number > counted:
            raise S3Error("InvalidPartNumber")
        known = self._parts.get((bucket, key, meta.etag, number))
        if known is not None:
            return replace(meta, parts_count=known[2]), known[0], known[1]
        # The origin's answer is of its current version, which may be newer than the one known: its bytes are then
        # read by that answer's ETag, so they are that version's.
        part, start, end = await self.origin.head_part(bucket, key, number)
        self._parts.put((bucket, key, part.etag, number), (start, end, part.parts_count))
        return part, start, end

    async def open_part(self, bucket: str, key: str, number: int) -> tuple[OpenObject, int, int]:
        """The part's bytes through the block cache, as the range of the object they are: the blocks are the
        ones a whole read or a Range read of the same bytes uses."""
        meta, start, end = await self.head_part(bucket, key, number)
        return CachedObject(self, bucket, meta), start, end

    async def open_here(self, bucket: str, key: str, index: int, whole: bool) -> ObjectMeta:
        """A peer's cold open (this worker owns block index): open it here, never asking another worker. Not from
        memory: the peer may ask because a write's invalidation reached it and not yet this worker, and an answer
        from here would put the old version back on the peer after the write is answered. Redis (dropped before
        the invalidation is sent) or the origin answers instead."""
        return await self._single_flight(bucket, key, index, whole=whole, routed=False)

    async def _single_flight(
        self, bucket: str, key: str, index: int | None, whole: bool = False, routed: bool = True,
    ) -> ObjectMeta:
        """Concurrent readers of a cold object share one origin request: a HEAD (index None) or a GET of block
        index (whole: of the object, which the client reads whole)."""
        if self.registry is not None and not self.registry.trusted:
            # An answer already on its way may predate a write this worker cannot hear of: ask on its own.
            return await self._learn(bucket, key, index, whole, routed)
        ident = (bucket, key, index is None)
        pending = self._learning.get(ident)
        if pending is None:
            pending = self._learning[ident] = asyncio.ensure_future(self._learn(bucket, key, index, whole, routed))
            pending.add_done_callback(lambda _: self._learning.pop(ident, None))
        return await asyncio.shield(pending)

    async def _learn(self, bucket: str, key: str, index: int | None, whole: bool, routed: bool) -> ObjectMeta:
        generation = self._generation
        meta, shared = await self.registry.get_meta(bucket, key) if self.registry is not None else (None, None)
        if meta is not None and index is None and not meta.checksums_known:
            meta = None  # a HEAD answers checksums: the shared copy came from a ranged GET that had none
        if meta is None:
            meta, owner_shared = await self._ask_origin(bucket, key, index, whole, routed)
            if self.registry is not None and not owner_shared and generation == self._generation:
                await self.registry.put_meta(bucket, meta, self.metadata_ttl_s, shared)
        if generation == self._generation:  # no write was invalidated meanwhile: safe to remember
            self._remember(bucket, key, meta)
        return meta

    def _remember(self, bucket: str, key: str, meta: ObjectMeta) -> None:
        expiry = time.monotonic() + self.metadata_ttl_s
        hit = self._meta.get((bucket, key))
        if hit is not None and hit[0] > time.monotonic():
            if hit[1].etag != meta.etag:
                return  # a HEAD completing a ranged GET's metadata found another version: keep the known one
            expiry = hit[0]  # completed, not renewed: a change at the origin still shows within one TTL
        self._meta.put((bucket, key), (expiry, meta))
        self._buckets.put(bucket, expiry)  # an object of it was just read: the bucket exists

    async def _ask_origin(
        self, bucket: str, key: str, index: int | None, whole: bool, routed: bool,
    ) -> tuple[ObjectMeta, bool]:
        """The metadata from the origin, and whether the block's owner asked it (and so has shared it already: no
        second Redis write on the way of a cold read)."""
        if index is not None and routed:
            meta = await self.reader.cold_meta(bucket, key, index, whole)  # the block's owner makes the one request
            if meta is not None:
                return meta, True
        if index is not None:
            start = index * self.reader.block_size
            try:
                meta, body = await self.origin.open_range(bucket, key, start, start + self.reader.block_size, whole)
            except S3Error as error:
                if error.code != "InvalidRange":
                    raise  # NoSuchKey, AccessDenied...: the client's answer, as a HEAD would have given it
            else:
                self.reader.adopt(bucket, meta, index, body)  # an empty object has no block: it is dropped
                return meta, False
        return await self.origin.head_object(bucket, key), False  # an empty object, or a start past the end

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        if self.list_ttl_s <= 0:
            return await self.origin.list_objects(bucket, prefix, delimiter, marker, max_keys)
        ident = (bucket, prefix, delimiter, marker, max_keys)
        now = time.monotonic()
        hit = self._lists.get(ident)
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        page = await self.origin.list_objects(bucket, prefix, delimiter, marker, max_keys)
        if generation == self._generation:  # no write was invalidated meanwhile: the page cannot be older than it
            self._lists.put(ident, (now + self.list_ttl_s, page))
        return page

    # ---- writes: through to the under storage, then invalidate ---------------------------------

    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta:
        try:
            return await self.origin.put_object(bucket, key, body, new, conditions, size=size)
        finally:
            await self.invalidate(bucket, key)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None,
        conditions: WriteConditions = UNCONDITIONAL,
    ) -> ObjectMeta:
        try:
            return await self.origin.copy_object(src_bucket, src_key, bucket, key, new, tags, conditions)
        finally:
            await self.invalidate(bucket, key)

    async def delete_object(self, bucket: str, key: str, conditions: WriteConditions = UNCONDITIONAL) -> None:
        try:
            await self.origin.delete_object(bucket, key, conditions)
        finally:
            await self.invalidate(bucket, key)

    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        try:
            return await self.origin.delete_objects(bucket, keys, if_match)
        finally:
            await self.invalidate(bucket, *keys)

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        try:
            await self.origin.put_object_tags(bucket, key, tags)
        finally:
            await self.invalidate(bucket, key)

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions,
        checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        try:
            return await self.origin.complete_upload(bucket, key, upload_id, parts, conditions, checksums)
        finally:
            await self.invalidate(bucket, key)

    async def delete_bucket(self, bucket: str) -> None:
        self._buckets.pop(bucket)
        await self.origin.delete_bucket(bucket)
        for ident in [k for k in self._meta if k[0] == bucket]:
            self._meta.pop(ident)
        await self.invalidate(bucket, "")  # the bucket itself (key ""): its listings and known existence, everywhere

    # ---- everything else passes through --------------------------------------------------------

    async def list_buckets(self) -> list[BucketInfo]:
        return await self.origin.list_buckets()

    async def head_bucket(self, bucket: str) -> None:
        """A bucket known to exist (it answered a HeadBucket, or one of its objects was read, within the metadata
        TTL) is answered here: Triton asks HeadBucket before every folder check of a model repository."""
        known = self._buckets.get(bucket)
        if known is not None and known > time.monotonic():
            return
        await self.origin.head_bucket(bucket)
        self._buckets.put(bucket, time.monotonic() + self.metadata_ttl_s)

    async def create_bucket(self, bucket: str) -> None:
        await self.origin.create_bucket(bucket)

    async def get_bucket_tags(self, bucket: str) -> dict[str, str]:
        return await self.origin.get_bucket_tags(bucket)

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        await self.origin.put_bucket_tags(bucket, tags)

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        return await self.origin.get_object_tags(bucket, key)


_: type[UnderStore] = CachedStore
