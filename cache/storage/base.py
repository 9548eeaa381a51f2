"""The under-storage (UFS) protocol: what every backing store of s3cache offers, S3-shaped.

A directory on local disk implements it (``cache.storage.directory``), and so does an S3 origin
(``cache.storage.origin``); the block cache (``cache.blocks.metadata``) wraps an origin behind the same calls.
Bodies are async iterators of bytes in both directions: nothing here holds a whole object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from cache.s3.errors import S3Error
from cache.s3.model import (
    UNCONDITIONAL,
    BodyChecksums,
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    PartInfo,
    PartListing,
    SentChecksums,
    UploadInfo,
    WriteConditions,
)


class OpenObject(Protocol):
    """An object opened for reading: its metadata and its bytes, consistent with each other."""

    meta: ObjectMeta

    def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) in chunks of at most chunk_bytes."""
        ...

    async def read_small(self, start: int, end: int) -> bytes:
        """Bytes [start, end) at once: only for ranges known to be small."""
        ...

    def close(self) -> None: ...


Body = AsyncIterator[bytes]


class Multipart(Protocol):
    """The multipart calls of an under storage: a backend keeps them in a module of their own."""

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str: ...
    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None,
        checksums: BodyChecksums | None = None,
    ) -> PartInfo:
        """checksums: what the client sent with the part (already checked against its bytes as they stream); the
        part's checksum in the upload's algorithm is in the answer."""
        ...
    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str,
        start: int, end: int,
    ) -> PartInfo: ...
    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions,
        checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        """checksums: the ones the request names, each checked (InvalidPart for a part's, BadDigest for the
        object's); the object's checksum and type are in the answer."""
        ...
    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...
    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing: ...
    async def list_uploads(self, bucket: str) -> list[UploadInfo]: ...
    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        """The parts of a completed multipart object (size and checksums; GetObjectAttributes' ObjectParts), in
        order; [] when they are not known (an object not uploaded in parts, or an origin that does not say)."""
        ...


class DelegatedMultipart:
    """Hands the multipart calls to ``self._uploads``, the backend's multipart module (set by its __init__)."""

    _uploads: Multipart

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        return await self._uploads.create_upload(bucket, key, new, initiator)

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None,
        checksums: BodyChecksums | None = None,
    ) -> PartInfo:
        return await self._uploads.upload_part(bucket, key, upload_id, number, body, size, checksums)

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str, start: int, end: int,
    ) -> PartInfo:
        return await self._uploads.upload_part_copy(bucket, key, upload_id, number, src_bucket, src_key, start, end)

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions,
        checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        return await self._uploads.complete_upload(bucket, key, upload_id, parts, conditions, checksums)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._uploads.abort_upload(bucket, key, upload_id)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing:
        return await self._uploads.list_parts(bucket, key, upload_id)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        return await self._uploads.list_uploads(bucket)

    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        return await self._uploads.object_parts(bucket, key)


class UnderStore(Multipart, Protocol):
    """Every call raises cache.s3.errors.S3Error for what a client must see."""

    async def list_buckets(self) -> list[BucketInfo]: ...
    async def head_bucket(self, bucket: str) -> None: ...
    async def create_bucket(self, bucket: str) -> None: ...
    async def delete_bucket(self, bucket: str) -> None: ...
    async def get_bucket_tags(self, bucket: str) -> dict[str, str]: ...
    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None: ...

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        """checksums: the answer will carry x-amz-checksum-* (checksum mode), so a store that may know the object
        without them (a cache that learned it from a ranged GET) must find them; every other store ignores it."""
        ...
    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> OpenObject:
        """The object's metadata and bytes; first_byte says where the client will start reading (None: it reads
        the whole object), a hint a cache uses to fetch that block with the metadata in one request; every
        other store ignores it."""
        ...
    async def head_part(self, bucket: str, key: str, number: int) -> tuple[ObjectMeta, int, int]:
        """A part read (GetObject / HeadObject ?partNumber=): the object's metadata (size: the whole object's;
        parts_count: its number of parts, None for an object not uploaded in parts, whose part 1 is all of it)
        and the part's bytes [start, end) in it; 416 InvalidPartNumber past its last part."""
        ...
    async def open_part(self, bucket: str, key: str, number: int) -> tuple[OpenObject, int, int]:
        """head_part's answer with the object opened, its bytes consistent with that metadata."""
        ...
    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta: ...
    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None,
        conditions: WriteConditions = UNCONDITIONAL,
    ) -> ObjectMeta:
        """conditions: the destination's (If-None-Match: *, If-Match), judged as a PutObject's are."""
        ...
    async def delete_object(self, bucket: str, key: str, conditions: WriteConditions = UNCONDITIONAL) -> None:
        """conditions: If-Match alone (a conditional DeleteObject), judged atomically as a conditional write is."""
        ...
    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        """Delete up to 1000 keys (if_match: each key's If-Match ETag, or None); one outcome per key, in order
        (None: deleted or absent)."""
        ...
    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]: ...
    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None: ...
    async def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> ListPage: ...



class Origin(UnderStore, Protocol):
    """An under storage the block cache can sit in front of: it reads ranges of a pinned version, and opens a
    cold range whose answer carries the metadata of the version it read."""

    def read_range(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) of version etag; PreconditionFailed once the object has changed."""
        ...

    async def open_range(
        self, bucket: str, key: str, start: int, end: int, whole: bool = False,
    ) -> tuple[ObjectMeta, AsyncIterator[bytes]]:
        """Bytes [start, end) of the current version and its metadata, from one request (whole: asked for whole,
        so the metadata is complete, checksums included); InvalidRange when start is past the end."""
        ...
