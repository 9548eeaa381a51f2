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
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    PartInfo,
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


class UnderStore(Protocol):
    """Every call raises cache.s3.errors.S3Error for what a client must see."""

    async def list_buckets(self) -> list[BucketInfo]: ...
    async def head_bucket(self, bucket: str) -> None: ...
    async def create_bucket(self, bucket: str) -> None: ...
    async def delete_bucket(self, bucket: str) -> None: ...
    async def get_bucket_tags(self, bucket: str) -> dict[str, str]: ...
    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None: ...

    async def head_object(self, bucket: str, key: str) -> ObjectMeta: ...
    async def open_object(self, bucket: str, key: str) -> OpenObject: ...
    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta: ...
    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None
    ) -> ObjectMeta: ...
    async def delete_object(self, bucket: str, key: str) -> None: ...
    async def delete_objects(self, bucket: str, keys: list[str]) -> list[S3Error | None]:
        """Delete up to 1000 keys; one outcome per key, in order (None: deleted or absent)."""
        ...
    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]: ...
    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None: ...
    async def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> ListPage: ...

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str: ...
    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None
    ) -> PartInfo: ...
    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str,
        start: int, end: int,
    ) -> PartInfo: ...
    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]], conditions: WriteConditions
    ) -> ObjectMeta: ...
    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None: ...
    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]: ...
    async def list_uploads(self, bucket: str) -> list[UploadInfo]: ...
