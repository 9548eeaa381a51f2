"""Listing operations: ListObjects (v1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from cache.s3.errors import invalid_argument
from cache.s3.listing import MAX_KEYS
from cache.s3.model import ListPage
from cache.s3.xml import NOT_XML_CHAR, xml_safe
from proxy.context import Context
from proxy.handlers.buckets import owner_xml
from proxy.http import Request, Response
from proxy.xml import document, iso_time, tag


class _Encoder:
    """encoding-type=url: keys and prefixes travel URL-encoded, so any key survives XML."""

    def __init__(self, request: Request) -> None:
        encoding = request.query.get("encoding-type")
        if encoding is not None and encoding != "url":
            raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding)
        self.on = encoding == "url"

    def __call__(self, value: str) -> str:
        return quote(value, safe="/") if self.on else value

    def element(self) -> str:
        return tag("EncodingType", "url") if self.on else ""


def _max_keys(request: Request, name: str = "max-keys") -> int:
    raw = request.query.get(name, str(MAX_KEYS))
    try:
        value = int(raw)
    except ValueError:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, raw) from None
    if value < 0:
        raise invalid_argument(f"Argument {name} must be an integer between 0 and 2147483647", name, raw)
    return min(value, MAX_KEYS)


async def _page(ctx: Context, request: Request, marker: str, max_keys: int) -> ListPage:
    return await ctx.store.list_objects(
        request.bucket, request.query.get("prefix", ""), request.query.get("delimiter", ""), marker, max_keys)


def _contents(page: ListPage, enc: _Encoder, owner: bool, element: str = "Contents", extra: str = "") -> str:
    owner_part = owner_xml() if owner else ""
    return "".join(
        f"<{element}>{tag('Key', enc(e.key))}{extra}{tag('LastModified', iso_time(e.last_modified))}"
        f"{tag('ETag', chr(34) + e.etag + chr(34))}{tag('Size', e.size)}{owner_part}"
        f"{tag('StorageClass', 'STANDARD')}</{element}>"
        for e in page.entries)


def _prefixes(page: ListPage, enc: _Encoder) -> str:
    return "".join(f"<CommonPrefixes>{tag('Prefix', enc(p))}</CommonPrefixes>" for p in page.common_prefixes)


def _common(request: Request, enc: _Encoder, max_keys: int, page: ListPage, encode_prefix: bool = True) -> list[str]:
    prefix = request.query.get("prefix", "")
    parts = [tag("Name", request.bucket), tag("Prefix", enc(prefix) if encode_prefix else _raw_prefix(prefix))]
    delimiter = request.query.get("delimiter", "")
    parts.append(tag("MaxKeys", max_keys))
    if delimiter:
        parts.append(tag("Delimiter", enc(delimiter)))
    parts.append(enc.element())
    parts.append(tag("IsTruncated", "true" if page.is_truncated else "false"))
    return parts


def _raw_prefix(prefix: str) -> str:
    """ListObjects (v1) Prefix, which S3 never URL-encodes (and SDKs never decode: botocore decodes Delimiter,
    Marker, NextMarker, Key and CommonPrefixes there, not Prefix); only characters XML cannot carry at all
    travel as %XX."""
    return prefix if xml_safe(prefix) else NOT_XML_CHAR.sub(lambda m: quote(m.group(), safe=""), prefix)


async def list_objects(ctx: Context, request: Request) -> Response:
    """ListObjects (v1): with encoding-type=url, Key, Delimiter, Marker, NextMarker and CommonPrefixes/Prefix
    are URL-encoded, once; the top-level Prefix is as sent."""
    enc = _Encoder(request)
    max_keys = _max_keys(request)
    marker = request.query.get("marker", "")
    page = await _page(ctx, request, marker, max_keys)
    parts = _common(request, enc, max_keys, page, encode_prefix=False)
    parts.insert(2, tag("Marker", enc(marker)))
    if page.is_truncated and page.next_marker is not None:
        parts.append(tag("NextMarker", enc(page.next_marker)))
    parts += [_contents(page, enc, owner=True), _prefixes(page, enc)]
    return Response.xml(document("ListBucketResult", *parts))


def _token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token) \
            from None


async def list_objects_v2(ctx: Context, request: Request) -> Response:
    if request.query.get("list-type") != "2":
        raise invalid_argument("Invalid List Type specified in Request", "list-type", request.query["list-type"])
    enc = _Encoder(request)
    max_keys = _max_keys(request)
    token = request.query.get("continuation-token")
    start_after = request.query.get("start-after", "")
    marker = _untoken(token) if token is not None else start_after
    page = await _page(ctx, request, marker, max_keys)
    parts = _common(request, enc, max_keys, page)
    parts.insert(3, tag("KeyCount", len(page.entries) + len(page.common_prefixes)))
    if token is not None:
        parts.append(tag("ContinuationToken", token))
    if start_after:
        parts.append(tag("StartAfter", enc(start_after)))
    if page.is_truncated and page.next_marker is not None:
        parts.append(tag("NextContinuationToken", _token(page.next_marker)))
    fetch_owner = request.query.get("fetch-owner", "false").lower() == "true"
    parts += [_contents(page, enc, owner=fetch_owner), _prefixes(page, enc)]
    return Response.xml(document("ListBucketResult", *parts))


async def list_object_versions(ctx: Context, request: Request) -> Response:
    """Unversioned buckets: each object is its one version, with VersionId "null"."""
    enc = _Encoder(request)
    max_keys = _max_keys(request)
    key_marker = request.query.get("key-marker", "")
    version_marker = request.query.get("version-id-marker")
    if version_marker is not None and not key_marker:
        raise invalid_argument("A version-id marker cannot be specified without a key marker.",
                               "version-id-marker", version_marker)
    page = await _page(ctx, request, key_marker, max_keys)
    parts = _common(request, enc, max_keys, page)
    parts.insert(2, tag("KeyMarker", enc(key_marker)) + tag("VersionIdMarker", version_marker or ""))
    if page.is_truncated and page.next_marker is not None:
        parts.append(tag("NextKeyMarker", enc(page.next_marker)) + tag("NextVersionIdMarker", "null"))
    latest = tag("VersionId", "null") + tag("IsLatest", "true")
    parts += [_contents(page, enc, owner=True, element="Version", extra=latest), _prefixes(page, enc)]
    return Response.xml(document("ListVersionsResult", *parts))


