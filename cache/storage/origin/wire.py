"""The S3 wire format toward an origin: response XML, headers and errors in, request headers and bodies out.

Pure helpers of cache.storage.origin.store, kept apart so the client itself is only requests, retries and errors.
What the front end needs too (XML parsing and escaping, the Tagging document, HTTP dates) is cache.s3.xml's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from email.header import decode_header
from typing import Any
from urllib.parse import unquote_plus, urlencode
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from cache.s3.checksums import ALGORITHMS, COMPOSITE, element_name, header_name, type_of
from cache.s3.errors import CODES, S3Error, no_such_bucket, no_such_key
from cache.s3.model import (
    STORED_HEADERS,
    ListEntry,
    ListPage,
    NewObject,
    ObjectMeta,
    WriteConditions,
    multipart_etag_parts,
)
from cache.s3.xml import S3_NS, http_date, parse_xml, tag, tag_pairs
from cache.storage.base import Body

# What an origin's error answer without a body (a HEAD's) means
_STATUS_CODES = {304: "NotModified", 400: "InvalidRequest", 403: "AccessDenied", 404: "NoSuchKey",
                 405: "MethodNotAllowed", 409: "OperationAborted", 412: "PreconditionFailed", 416: "InvalidRange",
                 500: "InternalError", 501: "NotImplemented", 503: "ServiceUnavailable"}


def http_epoch(text: str | None) -> float:
    """An HTTP date of the origin's (Last-Modified, Date) as epoch seconds; 0 when absent or unreadable."""
    epoch = http_date(text)
    return 0.0 if epoch is None else epoch


def iso_epoch(text: str | None) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def meta_from_headers(key: str, headers: Mapping[str, str]) -> ObjectMeta:
    return ObjectMeta(
        key=key,
        size=int(headers.get("content-length", "0")),
        etag=headers.get("etag", "").strip('"'),
        last_modified=http_epoch(headers.get("last-modified")),
        headers={name: headers[name] for name in STORED_HEADERS if name in headers},
        user_metadata={name[11:]: metadata_from_header(value) for name, value in headers.items()
                       if name.startswith("x-amz-meta-")},
        tag_count=int(headers.get("x-amz-tagging-count", "0")),
        **_checksums(headers),
    )


def _checksums(headers: Mapping[str, str]) -> dict[str, Any]:
    """An origin's checksums of an object and their type, as S3 answers them: a composite checksum ends in -N (an
    origin that leaves it out of a HEAD, as moto does, has it added from the part count of the ETag), and a type
    the origin does not name is the one the object implies (cache.s3.checksums.type_of)."""
    etag = headers.get("etag", "")
    checksums = checksums_of(headers)
    checksum_type = type_of(checksums, headers.get("x-amz-checksum-type") if checksums else None, etag)
    count = multipart_etag_parts(etag)
    if checksum_type == COMPOSITE and count is not None:
        checksums = {name: value if "-" in value else f"{value}-{count}" for name, value in checksums.items()}
    return {"checksums": checksums, "checksum_type": checksum_type}


def checksums_of(headers: Mapping[str, str]) -> dict[str, str]:
    """The x-amz-checksum-<algorithm> values of an origin's answer."""
    return {name[15:]: value for name, value in headers.items()
            if name.startswith("x-amz-checksum-") and name[15:] not in _NOT_CHECKSUMS}


def checksum_elements(element: Element) -> dict[str, str]:
    """The ChecksumCRC32, ChecksumSHA256... children of an element of an origin's answer, by algorithm."""
    return {name: value for name in ALGORITHMS if (value := element.findtext(element_name(name)))}


# x-amz-checksum-* headers that are no checksum: the type (COMPOSITE, FULL_OBJECT), and the algorithm some
# origins (moto) echo from the CreateMultipartUpload that made the object.
_NOT_CHECKSUMS = frozenset({"type", "algorithm"})


# One or more RFC 2047 encoded words, all the value holds: how S3 (and s3cache toward it) sends user metadata that
# is not printable ASCII.
_ENCODED_WORDS = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=(?:\s+=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)*")
_NOT_PRINTABLE_ASCII = re.compile("[^\t\x20-\x7e]")


def metadata_to_header(value: str) -> str:
    """A user-metadata value for a request to the origin: as it is when printable ASCII, else its UTF-8 as an RFC
    2047 encoded word, so it is signed, sent and stored the same by any origin (S3 decodes it on writing)."""
    if not _NOT_PRINTABLE_ASCII.search(value):
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode() + "?="


def metadata_from_header(value: str) -> str:
    """A user-metadata value of the origin's answer as text: RFC 2047 encoded words decoded (S3 answers
    non-ASCII values so), anything else as it comes."""
    if not _ENCODED_WORDS.fullmatch(value):
        return value
    try:
        return "".join(part.decode(charset or "ascii") if isinstance(part, bytes) else part
                       for part, charset in decode_header(value))
    except (LookupError, UnicodeDecodeError, ValueError):  # an unknown charset, bad bytes or bad base64
        return value


def object_write_headers(new: NewObject) -> dict[str, str]:
    headers = dict(new.headers)
    headers.update({f"x-amz-meta-{name}": metadata_to_header(value) for name, value in new.user_metadata.items()})
    if new.tags:
        headers["x-amz-tagging"] = urlencode(new.tags)
    if new.checksum_algorithm:
        headers["x-amz-checksum-algorithm"] = new.checksum_algorithm.upper()
    if new.checksum_type:
        headers["x-amz-checksum-type"] = new.checksum_type
    return headers


_TRAILER_CHUNK_BYTES = 64 << 10


def delete_xml(keys: list[str]) -> bytes:
    """The body of a DeleteObjects request (not quiet: the answer lists every key's outcome)."""
    objects = "".join(f"<Object>{tag('Key', key)}</Object>" for key in keys)
    return f'<Delete xmlns="{S3_NS}">{objects}</Delete>'.encode()


def with_trailer(body: Body, size: int, checksums: dict[str, str], name: str) -> tuple[Body, int]:
    """body (size bytes) as aws-chunked with the checksum `name` in a trailer, and the encoded length.

    The checksum is read from checksums when the body has ended: the body's reader fills it in then.
    """
    def framed(length: int) -> int:
        return len(f"{length:x}") + 2 + length + 2

    full, rest = divmod(size, _TRAILER_CHUNK_BYTES)
    encoded_size = full * framed(_TRAILER_CHUNK_BYTES) + (framed(rest) if rest else 0) + 3 + \
        len(f"x-amz-checksum-{name}:") + ALGORITHMS[name].b64_chars + 4

    async def encoded() -> AsyncIterator[bytes]:
        pending = bytearray()
        async for piece in body:
            pending += piece
            while len(pending) >= _TRAILER_CHUNK_BYTES:
                yield b"%x\r\n%s\r\n" % (_TRAILER_CHUNK_BYTES, pending[:_TRAILER_CHUNK_BYTES])
                del pending[:_TRAILER_CHUNK_BYTES]
        if pending:
            yield b"%x\r\n%s\r\n" % (len(pending), pending)
        value = checksums.get(name, "")
        if len(value) != ALGORITHMS[name].b64_chars:
            raise S3Error("InternalError", f"The {name} checksum of the body is missing")
        yield f"0\r\nx-amz-checksum-{name}:{value}\r\n\r\n".encode()

    return encoded(), encoded_size


def with_checksum(headers: dict[str, str], body: Body, size: int | None, values: dict[str, str],
                  trailing: str | None) -> Body:
    """A client's checksum of a body passed on to the origin as the client sent it (the origin checks and keeps
    it): values known before the body as headers; one that comes after it as an aws-chunked trailer, the body
    framed for it. Sets the headers that say so; returns the body to send."""
    headers.update({header_name(name): value for name, value in values.items()})
    if values:
        headers["x-amz-sdk-checksum-algorithm"] = next(iter(values)).upper()  # as the SDKs send it
    if size is not None:
        headers["content-length"] = str(size)
    if trailing not in ALGORITHMS or trailing in values or size is None:
        return body
    assert trailing is not None
    body, encoded_size = with_trailer(body, size, values, trailing)
    encoding = headers.get("content-encoding")
    headers.update({
        "content-encoding": f"aws-chunked,{encoding}" if encoding else "aws-chunked",
        "content-length": str(encoded_size), "x-amz-decoded-content-length": str(size),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": header_name(trailing), "x-amz-sdk-checksum-algorithm": trailing.upper()})
    return body


def condition_headers(conditions: WriteConditions) -> dict[str, str]:
    headers = {}
    if conditions.if_none_match is not None:
        headers["if-none-match"] = conditions.if_none_match
    if conditions.if_match is not None:
        headers["if-match"] = conditions.if_match if conditions.if_match == "*" else f'"{conditions.if_match}"'
    return headers


def tags_of(tagging: Element) -> dict[str, str]:
    """The tags of an origin's Tagging answer, taken as it comes."""
    return dict(tag_pairs(tagging, strict=False))


def list_page(root: Element) -> ListPage:
    """A ListObjectsV2 answer (asked with encoding-type=url) as a page of the listing."""
    # encoding-type=url as AWS applies it: a space is "+", a "+" is %2B (botocore decodes with unquote_plus too);
    # an origin that ignored the parameter says so by leaving out EncodingType, and its keys are taken as sent.
    decode = unquote_plus if root.findtext("EncodingType") == "url" else str
    entries = [ListEntry(decode(c.findtext("Key") or ""), int(c.findtext("Size") or 0),
                         (c.findtext("ETag") or "").strip('"'), iso_epoch(c.findtext("LastModified")))
               for c in root.iter("Contents")]
    prefixes = [decode(p.findtext("Prefix") or "") for p in root.iter("CommonPrefixes")]
    truncated = (root.findtext("IsTruncated") or "false") == "true"
    last = max([e.key for e in entries] + prefixes) if truncated and (entries or prefixes) else None
    return ListPage(entries, prefixes, truncated, last)


def origin_error(status: int, headers: Mapping[str, str], data: bytes, endpoint: str, bucket: str,
                 key: str) -> S3Error:
    """The S3 error a failed origin answer means: its own Code and Message when its body has them, else the
    status's; a 5xx without a message names the origin."""
    code, message = None, ""
    if data:
        try:
            root = parse_xml(data)
            code, message = root.findtext("Code"), root.findtext("Message") or ""
        except ElementTree.ParseError:
            pass
    if code is None:
        code = _STATUS_CODES.get(status, "InternalError" if status >= 500 else "InvalidRequest")
        if code == "NoSuchKey" and not key:
            code = "NoSuchBucket"
    if code == "NoSuchBucket":
        return no_such_bucket(bucket)
    if code == "NoSuchKey":
        return no_such_key(key)
    if status >= 500 and not message:
        message = f"The origin {endpoint} answered HTTP {status}"
    extra = {"content-range": headers["content-range"]} if status == 416 and "content-range" in headers else {}
    known = code in CODES and CODES[code][0] == status
    return S3Error(code, message, headers=extra, origin_status=None if known else status)
