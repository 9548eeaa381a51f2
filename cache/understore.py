"""The under-storage (UFS) protocol: what every backing store of s3cache offers, S3-shaped.

A directory on local disk implements it today (``cache.dirstore``); an S3 origin implements the same
calls. Bodies are async iterators of bytes in both directions: nothing here holds a whole object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from cache.errors import S3Error

# Headers S3 stores with an object and returns on GET/HEAD (lower-case, as they travel).
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-type",
    "expires",
    "x-amz-website-redirect-location",
    "x-amz-storage-class",
)

MAX_TAGS = 10
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
MAX_USER_METADATA_BYTES = 2048
MIN_PART_SIZE_BYTES = 5 << 20
MAX_PART_NUMBER = 10000


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: float


@dataclass(frozen=True)
class ObjectMeta:
    """What a HEAD returns: everything but the bytes."""

    key: str
    size: int
    etag: str  # without quotes
    last_modified: float  # epoch seconds
    headers: dict[str, str] = field(default_factory=dict)  # STORED_HEADERS that were set
    user_metadata: dict[str, str] = field(default_factory=dict)  # without the x-amz-meta- prefix
    tags: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # e.g. {"crc32": "base64..."}: whole-object only
    parts_count: int | None = None
    tag_count: int = 0  # x-amz-tagging-count: known without the tags themselves (an origin's HEAD)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "binary/octet-stream")


@dataclass(frozen=True)
class NewObject:
    """What a writer says about an object besides its bytes."""

    headers: dict[str, str] = field(default_factory=dict)
    user_metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    # A checksum algorithm whose value arrives after the body (an aws-chunked trailer); it is in checksums once the
    # body has been read to its end. An S3 origin is sent the value the same way.
    trailing_checksum: str | None = None


@dataclass(frozen=True)
class WriteConditions:
    """Conditional writes (S3's If-None-Match: * and If-Match on PUT and CompleteMultipartUpload)."""

    if_match: str | None = None
    if_none_match: str | None = None


@dataclass(frozen=True)
class ListEntry:
    key: str
    size: int
    etag: str
    last_modified: float


@dataclass(frozen=True)
class ListPage:
    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None  # the last key or prefix returned, when truncated


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    last_modified: float


@dataclass(frozen=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: float
    initiator: str


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
    """Every call raises cache.errors.S3Error for what a client must see."""

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
