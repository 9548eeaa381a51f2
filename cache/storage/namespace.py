"""Buckets are mounts: each bucket name maps to a location in an under storage.

A mount is ``bucket -> (store, bucket there, key prefix there)``; who may use it is the access policy's
(proxy.policy), which a mount's mode and users map onto. Explicit mounts come from
configuration (``s3://origin-bucket/prefix`` or ``file:///dir``); every other bucket name goes to the
default store under the same name (the embedded directory, or an S3 origin passed through whole).
``Namespace`` implements the under-storage protocol by rewriting names and routing each call: it is the top
of the storage stack, and each call resolves its mount once. A mount's store is a directory, an S3 origin,
or the block cache wrapping an origin (``cache.blocks.metadata``): the namespace neither knows nor asks which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cache.s3.errors import S3Error, no_such_bucket
from cache.s3.model import (
    UNCONDITIONAL,
    BodyChecksums,
    BucketInfo,
    ListEntry,
    ListPage,
    NewObject,
    ObjectMeta,
    PartInfo,
    PartListing,
    SentChecksums,
    UploadInfo,
    WriteConditions,
)
from cache.storage.base import Body, OpenObject, UnderStore

_COPY_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class Mount:
    bucket: str  # the name clients use
    store: UnderStore
    target: str  # the bucket in that store
    prefix: str = ""  # key prefix in that bucket, "" or ending in "/"
    cached: bool = True  # store is the block cache (False for local directories: already local)

    def key(self, key: str) -> str:
        return self.prefix + key

    def unkey(self, key: str) -> str:
        return key[len(self.prefix):]


class Namespace:
    def __init__(self, mounts: list[Mount], default_store: UnderStore | None, default_cached: bool) -> None:
        self.mounts = {m.bucket: m for m in mounts}
        self.default_store = default_store
        self.default_cached = default_cached

    def mount(self, bucket: str) -> Mount:
        mount = self.mounts.get(bucket)
        if mount is not None:
            return mount
        if self.default_store is None:
            raise no_such_bucket(bucket)
        return Mount(bucket, self.default_store, bucket, cached=self.default_cached)

    def origin_name(self, bucket: str, key: str) -> tuple[str, str]:
        """Where (bucket, key) really lives in its store: blocks are named by this, so every worker and sidecar
        shares them whatever its own mounts call the bucket."""
        m = self.mount(bucket)
        return m.target, m.key(key)

    # ---- buckets -------------------------------------------------------------------------------

    async def list_buckets(self) -> list[BucketInfo]:
        listed = {b.name: b for b in await self.default_store.list_buckets()} if self.default_store else {}
        for name in self.mounts:
            listed[name] = BucketInfo(name, 0.0)
        return [listed[name] for name in sorted(listed)]

    async def head_bucket(self, bucket: str) -> None:
        m = self.mount(bucket)
        await m.store.head_bucket(m.target)

    async def create_bucket(self, bucket: str) -> None:
        if bucket in self.mounts:
            raise S3Error("BucketAlreadyOwnedByYou", extra={"BucketName": bucket})
        m = self.mount(bucket)
        await m.store.create_bucket(m.target)

    async def delete_bucket(self, bucket: str) -> None:
        if bucket in self.mounts:
            raise S3Error("AccessDenied", "A mounted bucket cannot be deleted through s3cache")
        m = self.mount(bucket)
        await m.store.delete_bucket(m.target)

    async def get_bucket_tags(self, bucket: str) -> dict[str, str]:
        m = self.mount(bucket)
        return dict(await m.store.get_bucket_tags(m.target))

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        m = self.mount(bucket)
        await m.store.put_bucket_tags(m.target, tags)

    # ---- objects -------------------------------------------------------------------------------

    def _unmeta(self, m: Mount, meta: ObjectMeta) -> ObjectMeta:
        if not m.prefix:
            return meta
        return replace(meta, key=m.unkey(meta.key))

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        m = self.mount(bucket)
        return self._unmeta(m, await m.store.head_object(m.target, m.key(key), checksums))

    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> OpenObject:
        m = self.mount(bucket)
        opened = await m.store.open_object(m.target, m.key(key), first_byte)
        if m.prefix:
            opened.meta = self._unmeta(m, opened.meta)
        return opened

    async def head_part(self, bucket: str, key: str, number: int) -> tuple[ObjectMeta, int, int]:
        m = self.mount(bucket)
        meta, start, end = await m.store.head_part(m.target, m.key(key), number)
        return self._unmeta(m, meta), start, end

    async def open_part(self, bucket: str, key: str, number: int) -> tuple[OpenObject, int, int]:
        m = self.mount(bucket)
        opened, start, end = await m.store.open_part(m.target, m.key(key), number)
        if m.prefix:
            opened.meta = self._unmeta(m, opened.meta)
        return opened, start, end

    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta:
        m = self.mount(bucket)
        return self._unmeta(m, await m.store.put_object(m.target, m.key(key), body, new, conditions, size=size))

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None,
        conditions: WriteConditions = UNCONDITIONAL,
    ) -> ObjectMeta:
        src, dst = self.mount(src_bucket), self.mount(bucket)
        if src.store is dst.store:
            meta = await dst.store.copy_object(src.target, src.key(src_key), dst.target, dst.key(key), new, tags,
                                               conditions)
            return self._unmeta(dst, meta)
        source = await src.store.open_object(src.target, src.key(src_key))  # across stores: stream it over
        meta = source.meta
        if new is None:
            new = NewObject(meta.headers, meta.user_metadata)
        new = NewObject(new.headers, new.user_metadata, meta.tags if tags is None else tags)
        body = source.iter_range(0, meta.size, _COPY_CHUNK_BYTES)
        written = await dst.store.put_object(dst.target, dst.key(key), body, new, conditions, size=meta.size)
        return self._unmeta(dst, written)

    async def delete_object(self, bucket: str, key: str, conditions: WriteConditions = UNCONDITIONAL) -> None:
        m = self.mount(bucket)
        await m.store.delete_object(m.target, m.key(key), conditions)

    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        m = self.mount(bucket)
        return await m.store.delete_objects(m.target, [m.key(key) for key in keys], if_match)

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        m = self.mount(bucket)
        return dict(await m.store.get_object_tags(m.target, m.key(key)))

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        m = self.mount(bucket)
        await m.store.put_object_tags(m.target, m.key(key), tags)

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        m = self.mount(bucket)
        page: ListPage = await m.store.list_objects(
            m.target, m.key(prefix), delimiter, m.key(marker) if marker else "", max_keys)
        if not m.prefix:
            return page
        return ListPage(
            [ListEntry(m.unkey(e.key), e.size, e.etag, e.last_modified) for e in page.entries],
            [m.unkey(p) for p in page.common_prefixes], page.is_truncated,
            m.unkey(page.next_marker) if page.next_marker else None)

    # ---- multipart -----------------------------------------------------------------------------

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        m = self.mount(bucket)
        return str(await m.store.create_upload(m.target, m.key(key), new, initiator))

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None,
        checksums: BodyChecksums | None = None,
    ) -> PartInfo:
        m = self.mount(bucket)
        part: PartInfo = await m.store.upload_part(m.target, m.key(key), upload_id, number, body, size, checksums)
        return part

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str, start: int, end: int,
    ) -> PartInfo:
        src, dst = self.mount(src_bucket), self.mount(bucket)
        if src.store is not dst.store:
            source = await src.store.open_object(src.target, src.key(src_key))
            body = source.iter_range(start, end, _COPY_CHUNK_BYTES)
            part: PartInfo = await dst.store.upload_part(dst.target, dst.key(key), upload_id, number, body,
                                                         size=end - start)
            return part
        copied: PartInfo = await dst.store.upload_part_copy(dst.target, dst.key(key), upload_id, number, src.target,
                                                            src.key(src_key), start, end)
        return copied

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions,
        checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        m = self.mount(bucket)
        return self._unmeta(m, await m.store.complete_upload(m.target, m.key(key), upload_id, parts, conditions,
                                                             checksums))

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        m = self.mount(bucket)
        await m.store.abort_upload(m.target, m.key(key), upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing:
        m = self.mount(bucket)
        listing: PartListing = await m.store.list_parts(m.target, m.key(key), upload_id)
        return listing

    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        m = self.mount(bucket)
        return list(await m.store.object_parts(m.target, m.key(key)))

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        m = self.mount(bucket)
        uploads: list[UploadInfo] = await m.store.list_uploads(m.target)
        return [replace(u, key=m.unkey(u.key)) for u in uploads
                if u.key.startswith(m.prefix)]


_: type[UnderStore] = Namespace
