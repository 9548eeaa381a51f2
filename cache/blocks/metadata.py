"""The cache in front of the namespace: object metadata with a TTL, object bytes through the block store.

Consistency contract: a write through s3cache (PUT, copy, delete, multipart complete, tagging) drops the
key's cached metadata at once, and the new ETag gives new block ids, so old bytes can never be served
for a new version. A change made directly at the origin is seen once the metadata TTL
(``cache.metadata_ttl_s``) has passed; until then the version s3cache knows is served. Buckets that are
local directories are not block-cached (they are already local) and pass straight through.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace

from cache.blocks.reader import BlockReader
from cache.cluster.registry import Registry
from cache.s3.errors import S3Error
from cache.s3.model import (
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    PartInfo,
    UploadInfo,
    WriteConditions,
)
from cache.storage.base import Body, OpenObject
from cache.storage.namespace import Namespace

_META_ENTRIES = 100_000
_LIST_ENTRIES = 1_000


class CachedObject:
    """An object whose bytes come through the block cache."""

    def __init__(self, store: CachedStore, bucket: str, meta: ObjectMeta) -> None:
        self.store, self.bucket, self.meta = store, bucket, meta

    def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        target, key = self.store.namespace.origin_name(self.bucket, self.meta.key)
        meta = self.meta if key == self.meta.key else replace(self.meta, key=key)
        return self.store.reader.stream(target, meta, start, end, chunk_bytes)

    async def read_small(self, start: int, end: int) -> bytes:
        try:
            return b"".join([c async for c in self.iter_range(start, end, max(1, end - start))])
        except S3Error as error:
            if error.code != "PreconditionFailed":
                raise
            # The origin's version moved on since the metadata was cached: forget it and read anew.
            await self.store.invalidate(self.bucket, self.meta.key)
            fresh = await self.store.head_object(self.bucket, self.meta.key)
            if fresh.size != self.meta.size:
                raise S3Error("ServiceUnavailable", "The object changed while it was read; retry") from None
            self.meta = fresh
            return b"".join([c async for c in self.iter_range(start, end, max(1, end - start))])

    def close(self) -> None:
        pass


class CachedStore:
    def __init__(self, namespace: Namespace, reader: BlockReader, metadata_ttl_s: float, list_ttl_s: float = 0.0,
                 registry: Registry | None = None):
        self.namespace = namespace
        self.registry = registry  # in a cluster: metadata shared through Redis, invalidations published
        self.reader = reader
        self.metadata_ttl_s = metadata_ttl_s
        self.list_ttl_s = list_ttl_s
        self._meta: OrderedDict[tuple[str, str], tuple[float, ObjectMeta]] = OrderedDict()
        self._lists: OrderedDict[tuple[str, str, str, str, int], tuple[float, ListPage]] = OrderedDict()
        self._heads: dict[tuple[str, str], asyncio.Future[ObjectMeta]] = {}
        self._generation = 0

    def forget(self, bucket: str, key: str) -> None:
        """Drop what this worker knows of a key ("" bucket: of everything)."""
        self._generation += 1  # a HEAD in flight now may describe the old version: it will not be kept
        self._heads.pop((bucket, key), None)
        if not bucket:
            self._meta.clear()
            self._lists.clear()
            return
        self._meta.pop((bucket, key), None)
        if self._lists:
            for entry in [k for k in self._lists if k[0] == bucket]:
                del self._lists[entry]

    def forget_origin(self, target: str, key: str) -> None:
        """Another worker wrote target/key (origin names): forget it under every name it has here."""
        if not target:
            self.forget("", "")
            return
        for bucket, name in self.namespace.client_names(target, key):
            self.forget(bucket, name)

    async def invalidate(self, bucket: str, *keys: str) -> None:
        """A write went through here: forget the keys, and have every other worker forget them too, before
        the write is answered (read-after-write holds on every worker). Workers share metadata by origin
        name, so one whose mounts call the bucket differently (a sidecar's input) hears of it too."""
        for key in keys:
            self.forget(bucket, key)
        if self.registry is None or not keys:
            return
        try:
            mount = self.namespace.mount(bucket)
        except S3Error:
            return  # no such bucket: nothing was written, nothing is cached
        if mount.cached:
            await self.registry.invalidate(mount.target, *(mount.key(key) for key in keys))

    # ---- reads ---------------------------------------------------------------------------------

    async def head_object(self, bucket: str, key: str) -> ObjectMeta:
        if not self.namespace.mount(bucket).cached:
            return await self.namespace.head_object(bucket, key)
        hit = self._meta.get((bucket, key))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._heads.get((bucket, key))
        if pending is None:  # single-flight: concurrent readers of a cold object share one HEAD
            pending = self._heads[(bucket, key)] = asyncio.ensure_future(self._learn(bucket, key))
            pending.add_done_callback(lambda _: self._heads.pop((bucket, key), None))
        return await asyncio.shield(pending)

    async def _learn(self, bucket: str, key: str) -> ObjectMeta:
        generation = self._generation
        target, origin_key = self.namespace.origin_name(bucket, key)
        meta, shared = await self.registry.get_meta(target, origin_key) if self.registry is not None else (None, None)
        if meta is not None:
            meta = replace(meta, key=key)
        else:
            meta = await self.namespace.head_object(bucket, key)
            if self.registry is not None and generation == self._generation:
                await self.registry.put_meta(target, replace(meta, key=origin_key), self.metadata_ttl_s, shared)
        if generation == self._generation:  # no write was invalidated meanwhile: safe to remember
            self._meta[(bucket, key)] = (time.monotonic() + self.metadata_ttl_s, meta)
            self._meta.move_to_end((bucket, key))
            if len(self._meta) > _META_ENTRIES:
                self._meta.popitem(last=False)
        return meta

    async def open_object(self, bucket: str, key: str) -> OpenObject:
        if not self.namespace.mount(bucket).cached:
            return await self.namespace.open_object(bucket, key)
        return CachedObject(self, bucket, await self.head_object(bucket, key))

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        if self.list_ttl_s <= 0:
            return await self.namespace.list_objects(bucket, prefix, delimiter, marker, max_keys)
        ident = (bucket, prefix, delimiter, marker, max_keys)
        now = time.monotonic()
        hit = self._lists.get(ident)
        if hit is not None and hit[0] > now:
            return hit[1]
        page = await self.namespace.list_objects(bucket, prefix, delimiter, marker, max_keys)
        self._lists[ident] = (now + self.list_ttl_s, page)
        if len(self._lists) > _LIST_ENTRIES:
            self._lists.popitem(last=False)
        return page

    # ---- writes: through to the under storage, then invalidate ---------------------------------

    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta:
        try:
            return await self.namespace.put_object(bucket, key, body, new, conditions, size=size)
        finally:
            await self.invalidate(bucket, key)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None
    ) -> ObjectMeta:
        try:
            return await self.namespace.copy_object(src_bucket, src_key, bucket, key, new, tags)
        finally:
            await self.invalidate(bucket, key)

    async def delete_object(self, bucket: str, key: str) -> None:
        try:
            await self.namespace.delete_object(bucket, key)
        finally:
            await self.invalidate(bucket, key)

    async def delete_objects(self, bucket: str, keys: list[str]) -> list[S3Error | None]:
        try:
            return await self.namespace.delete_objects(bucket, keys)
        finally:
            await self.invalidate(bucket, *keys)

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        try:
            await self.namespace.put_object_tags(bucket, key, tags)
        finally:
            await self.invalidate(bucket, key)

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions
    ) -> ObjectMeta:
        try:
            return await self.namespace.complete_upload(bucket, key, upload_id, parts, conditions)
        finally:
            await self.invalidate(bucket, key)

    async def delete_bucket(self, bucket: str) -> None:
        await self.namespace.delete_bucket(bucket)
        for ident in [k for k in self._meta if k[0] == bucket]:
            del self._meta[ident]

    # ---- everything else passes through --------------------------------------------------------

    async def list_buckets(self) -> list[BucketInfo]:
        return await self.namespace.list_buckets()

    async def head_bucket(self, bucket: str) -> None:
        await self.namespace.head_bucket(bucket)

    async def create_bucket(self, bucket: str) -> None:
        await self.namespace.create_bucket(bucket)

    async def get_bucket_tags(self, bucket: str) -> dict[str, str]:
        return await self.namespace.get_bucket_tags(bucket)

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        await self.namespace.put_bucket_tags(bucket, tags)

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        return await self.namespace.get_object_tags(bucket, key)

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        return await self.namespace.create_upload(bucket, key, new, initiator)

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None
    ) -> PartInfo:
        return await self.namespace.upload_part(bucket, key, upload_id, number, body, size=size)

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str, start: int, end: int,
    ) -> PartInfo:
        return await self.namespace.upload_part_copy(bucket, key, upload_id, number, src_bucket, src_key, start, end)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.namespace.abort_upload(bucket, key, upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        return await self.namespace.list_parts(bucket, key, upload_id)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        return await self.namespace.list_uploads(bucket)
