"""Object headers in both directions: what a write stores, what a read returns, tags, versions, copy sources."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

from cache.s3.checksums import header_name, type_of
from cache.s3.errors import S3Error, invalid_argument
from cache.s3.model import (
    MAX_TAG_KEY_CHARS,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS,
    MAX_USER_METADATA_BYTES,
    STORED_HEADERS,
    NewObject,
    ObjectMeta,
    WriteConditions,
)
from proxy.http import Request
from proxy.xml import http_time

_META_PREFIX = "x-amz-meta-"
_NOT_HEADER_TEXT = re.compile("[^\t\x20-\x7e\x80-\xff]")  # what a header value's ISO-8859-1 text cannot hold
COPY_SOURCE = "x-amz-copy-source"
# Canned ACLs that leave the bucket owner alone with full control: what a bucket whose Object Ownership is
# BucketOwnerEnforced (ACLs disabled) accepts, changing nothing.
OWNER_ONLY_ACLS = frozenset({"private", "bucket-owner-full-control"})
_GRANT_PREFIX = "x-amz-grant-"
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def check_tags(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        if not key or len(key) > MAX_TAG_KEY_CHARS:
            raise S3Error("InvalidTag", f"The TagKey you have provided is invalid (1 to {MAX_TAG_KEY_CHARS} characters)")
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise S3Error("InvalidTag", f"The TagValue you have provided is too long (at most {MAX_TAG_VALUE_CHARS})")
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
        tags[key] = value
    if len(tags) > MAX_TAGS:
        raise S3Error("InvalidTag", f"Object tags cannot be greater than {MAX_TAGS}")
    return dict(sorted(tags.items()))  # S3 answers a TagSet sorted by key, whatever order it was given in


def tags_from_header(request: Request) -> dict[str, str]:
    header = request.headers.get("x-amz-tagging")
    return check_tags(parse_qsl(header, keep_blank_values=True)) if header else {}


def acls_disabled() -> S3Error:
    return S3Error("AccessControlListNotSupported")


def check_acl_headers(request: Request) -> bool:
    """The ACL headers of a request, judged as a bucket-owner-enforced bucket judges them: ``x-amz-acl`` of a
    canned ACL in OWNER_ONLY_ACLS is accepted and changes nothing; any other canned ACL, or any ``x-amz-grant-*``
    header, is 400 AccessControlListNotSupported. True when the request named an ACL at all."""
    acl = request.headers.get("x-amz-acl", "").strip()  # an empty one is no ACL, as S3 takes it
    if acl and acl not in OWNER_ONLY_ACLS:
        raise acls_disabled()
    if any(name.startswith(_GRANT_PREFIX) for name in request.headers):
        raise acls_disabled()
    return bool(acl)


def new_object(request: Request) -> NewObject:
    """Stored headers, user metadata and tags of a write, validated as S3 validates them (an ACL too)."""
    check_acl_headers(request)
    headers = {name: request.headers[name] for name in STORED_HEADERS if name in request.headers}
    encoding = headers.get("content-encoding")
    if encoding is not None:  # aws-chunked is how the body travelled, not what it is
        kept = [part.strip() for part in encoding.split(",") if part.strip() and part.strip() != "aws-chunked"]
        if kept:
            headers["content-encoding"] = ", ".join(kept)
        else:
            del headers["content-encoding"]
    user = {name[len(_META_PREFIX):]: value for name, value in request.headers.items()
            if name.startswith(_META_PREFIX)}
    size = sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in user.items())  # S3 counts UTF-8 bytes
    if size > MAX_USER_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", extra={"Size": str(size), "MaxSizeAllowed": str(MAX_USER_METADATA_BYTES)})
    return NewObject(headers=headers, user_metadata=user, tags=tags_from_header(request))


def _unimplemented_header(name: str) -> S3Error:
    return S3Error("NotImplemented", "A header you provided implies functionality that is not implemented",
                   extra={"Header": name})


def etag_condition(value: str | None) -> str | None:
    """An If-Match value (a header, or a DeleteObjects ETag element) as conditions hold it: unquoted."""
    return value.strip().strip('"') if value is not None and value.strip() else None


def write_conditions(request: Request) -> WriteConditions:
    """The conditions of a write (PutObject, CopyObject's destination, CompleteMultipartUpload): If-None-Match: *
    and If-Match: <etag>, the forms S3 has; If-None-Match with an ETag is 501."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise _unimplemented_header("If-None-Match")
    return WriteConditions(if_match=etag_condition(request.headers.get("if-match")),
                           if_none_match=if_none_match.strip() if if_none_match else None)


def delete_conditions(request: Request) -> WriteConditions:
    """DeleteObject's condition: If-Match alone (S3 has no If-None-Match on a delete: 501)."""
    if "if-none-match" in request.headers:
        raise _unimplemented_header("If-None-Match")
    return WriteConditions(if_match=etag_condition(request.headers.get("if-match")))


def check_version_id(request: Request) -> None:
    """Unversioned buckets: every object's version id is "null"; any other id names nothing."""
    version = request.query.get("versionId")
    if version is not None and version != "null":
        raise invalid_argument("Invalid version id specified", "versionId", version)


def split_copy_source(raw: str) -> tuple[str, str, str]:
    """``/bucket/key?versionId=...`` (URL-encoded, the leading slash optional) -> (bucket, key, query), unchecked.

    The one reading of the header: access policy checks the bucket it names, the copy reads from it."""
    path, _, query = raw.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    return bucket, key, query


def copy_source(request: Request) -> tuple[str, str]:
    """The (bucket, key) a copy reads from (CopyObject, UploadPartCopy), or InvalidArgument."""
    raw = request.headers.get(COPY_SOURCE, "")
    bucket, key, query = split_copy_source(raw)
    if not bucket or not key:
        raise invalid_argument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                               COPY_SOURCE, raw)
    if query.startswith("versionId=") and query[len("versionId="):] != "null":
        raise invalid_argument("Invalid version id specified", COPY_SOURCE, raw)
    return bucket, key  # the store judges the key, as it does every key


def metadata_header_value(value: str) -> str:
    """A user-metadata value as a response header carries it: as it is when every character is one a header's
    ISO-8859-1 bytes can carry (what clients decode header bytes as: ``é`` stored from a UTF-8 ``C3 A9``
    reads back as ``é``), else (beyond U+00FF, or a control character) RFC 2047-encoded UTF-8
    (``=?UTF-8?B?...?=``), as S3 returns such values."""
    if not _NOT_HEADER_TEXT.search(value):
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode() + "?="


def object_headers(meta: ObjectMeta) -> dict[str, str]:
    headers = {
        "etag": f'"{meta.etag}"',
        "last-modified": http_time(meta.last_modified),
        "accept-ranges": "bytes",
        "content-type": meta.content_type,
    }
    headers.update(meta.headers)
    for name, value in meta.user_metadata.items():
        headers[_META_PREFIX + name] = metadata_header_value(value)
    if meta.tag_count:
        headers["x-amz-tagging-count"] = str(meta.tag_count)
    return headers


def checksum_headers(meta: ObjectMeta) -> dict[str, str]:
    """An object's checksum as a read in checksum mode answers it, with its type where it is known."""
    headers = {header_name(name): value for name, value in meta.checksums.items()}
    checksum_type = type_of(meta.checksums, meta.checksum_type, meta.etag)
    if checksum_type:
        headers["x-amz-checksum-type"] = checksum_type
    return headers


def apply_response_overrides(request: Request, headers: dict[str, str]) -> None:
    for parameter, header in RESPONSE_OVERRIDES.items():
        value = request.query.get(parameter)
        if value is not None:
            headers[header] = value
