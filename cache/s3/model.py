"""The S3 value types: what an object, a bucket, a listing page, a part and an upload are, with S3's limits.

No I/O and nothing internal imported: the front end, the storage backends, the block cache and the
cluster all speak in these.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

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


def multipart_etag_parts(etag: str) -> int | None:
    """The part count a multipart object's ETag ("<md5>-<parts>") names; None for any other ETag."""
    _, dash, count = etag.strip('"').rpartition("-")
    return int(count) if dash and count.isascii() and count.isdigit() and len(count) <= 5 else None


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
    # COMPOSITE or FULL_OBJECT: how a multipart object's checksum was made (None: the object's own bytes, the
    # checksum of a single-part upload)
    checksum_type: str | None = None
    parts_count: int | None = None
    tag_count: int = 0  # x-amz-tagging-count: known without the tags themselves (an origin's HEAD)
    # False when learned from a ranged GET (a cold read's one origin request): S3 sends no whole-object
    # checksums with a range, so a HEAD in checksum mode asks the origin once more.
    checksums_known: bool = True

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "binary/octet-stream")

    # The one serialisation of an object's metadata (the cluster's shared copy in Redis is this JSON): every
    # field, by name, so a field added here travels without touching any reader or writer of it.

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ObjectMeta:
        """The inverse of to_record. A field the record lacks takes its default (a record written before the
        field existed); a key that is no field is ignored. TypeError when a field without default is missing."""
        return cls(**{f.name: _copied(record[f.name]) for f in fields(cls) if f.name in record})

    def to_json(self) -> str:
        return json.dumps(self.to_record(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ObjectMeta:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise TypeError("ObjectMeta record: not a JSON object")
        return cls.from_record(record)


def _copied(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value  # no record shares its dicts with an ObjectMeta


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
    # A multipart upload's checksum (CreateMultipartUpload's x-amz-checksum-algorithm, lower-case, and -type)
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True)
class BodyChecksums:
    """The checksum a client sent with a body (an UploadPart's): values known before the body, or the algorithm of
    one in a trailer, whose value is in values once the body has been read to its end."""

    values: dict[str, str] = field(default_factory=dict)
    trailing: str | None = None


@dataclass(frozen=True)
class SentChecksums:
    """The checksums a CompleteMultipartUpload names: per part (number -> algorithm -> value, from the part list)
    and of the whole object (its x-amz-checksum-* headers, and x-amz-checksum-type)."""

    parts: dict[int, dict[str, str]] = field(default_factory=dict)
    whole: dict[str, str] = field(default_factory=dict)
    checksum_type: str | None = None


@dataclass(frozen=True)
class WriteConditions:
    """Conditional writes (S3's If-None-Match: * and If-Match on PUT, copy and CompleteMultipartUpload, If-Match on
    a delete); judged by cache.s3.conditions."""

    if_match: str | None = None  # an ETag without its quotes, or "*"
    if_none_match: str | None = None  # "*", the one form S3 has

    @property
    def given(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None


UNCONDITIONAL = WriteConditions()


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
    checksums: dict[str, str] = field(default_factory=dict)  # the part's own, in the upload's algorithm


@dataclass(frozen=True)
class PartListing:
    """An upload's parts (ListParts), with the checksum algorithm and type it was created with."""

    parts: list[PartInfo]
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True)
class UploadInfo:
    key: str
    upload_id: str
    initiated: float
    initiator: str
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
