"""Multipart operations: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts, ListMultipartUploads."""

from __future__ import annotations

import re

from cache.s3.errors import S3Error, invalid_argument
from cache.s3.model import MAX_PART_NUMBER
from proxy.body import body_check, decoded_body, read_xml_body
from proxy.conditions import check_preconditions
from proxy.context import OWNER_ID, Context
from proxy.handlers.buckets import owner_xml
from proxy.headers import copy_source, new_object, write_conditions
from proxy.http import Request, Response
from proxy.xml import document, iso_time, parse, tag

_COPY_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")
MAX_LISTED = 1000


def _number(text: str) -> int | None:
    """ASCII digits as an int, else None: str.isdigit() also takes "²" (which int() refuses), and int() refuses a
    string past 4300 digits. A value past 10**18 reads as 10**18, past every bound it is compared with."""
    if not text.isascii() or not text.isdigit():
        return None
    text = text.lstrip("0") or "0"
    return int(text) if len(text) <= 18 else 10**18


def _part_number(request: Request) -> int:
    raw = request.query.get("partNumber", "")
    number = _number(raw)
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                               "partNumber", raw)
    return number


def _initiator(user: str | None) -> str:
    name = user or "anonymous"
    return f"<Initiator>{tag('ID', name)}{tag('DisplayName', name)}</Initiator>"


async def create_multipart_upload(ctx: Context, request: Request) -> Response:
    upload_id = await ctx.store.create_upload(request.bucket, request.key, new_object(request), request.user or "")
    return Response.xml(document("InitiateMultipartUploadResult", tag("Bucket", request.bucket),
                                 tag("Key", request.key), tag("UploadId", upload_id)))


async def upload_part(ctx: Context, request: Request) -> Response:
    number = _part_number(request)
    check = body_check(request)
    part = await ctx.store.upload_part(request.bucket, request.key, request.query["uploadId"], number,
                                       decoded_body(request, check), size=check.expected_length)
    headers = {"etag": f'"{part.etag}"'}
    headers.update({f"x-amz-checksum-{name}": value for name, value in check.checksums.items()})
    return Response(200, headers)


async def upload_part_copy(ctx: Context, request: Request) -> Response:
    number = _part_number(request)
    src_bucket, src_key = copy_source(request)
    source = await ctx.store.head_object(src_bucket, src_key)
    check_preconditions(request.headers, source, prefix="x-amz-copy-source-")
    start, end = 0, source.size
    raw_range = request.headers.get("x-amz-copy-source-range")
    if raw_range is not None:
        match = _COPY_RANGE_RE.match(raw_range.strip())
        if not match:
            raise invalid_argument("The x-amz-copy-source-range value must be of the form bytes=first-last where "
                                   "first and last are the zero-based offsets of the first and last bytes to copy",
                                   "x-amz-copy-source-range", raw_range)
        start, end = _number(match.group(1)) or 0, (_number(match.group(2)) or 0) + 1
        if start >= end or end > source.size:
            raise S3Error("InvalidRange", extra={"ActualObjectSize": str(source.size)})
    part = await ctx.store.upload_part_copy(request.bucket, request.key, request.query["uploadId"], number,
                                            src_bucket, src_key, start, end)
    return Response.xml(document("CopyPartResult", tag("LastModified", iso_time(part.last_modified)),
                                 tag("ETag", f'"{part.etag}"')))


async def complete_multipart_upload(ctx: Context, request: Request) -> Response:
    root = parse(await read_xml_body(request), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for element in root.findall("Part"):
        text, etag = element.findtext("PartNumber"), element.findtext("ETag")
        number = _number(text.strip()) if text is not None else None
        if text is None or etag is None or number is None:
            raise S3Error("MalformedXML", "Each Part must have a PartNumber and an ETag")
        if not 1 <= number <= MAX_PART_NUMBER or len(parts) == MAX_PART_NUMBER:  # S3: never InvalidPart
            raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                                   "partNumber", text.strip())
        parts.append((number, etag.strip()))
    meta = await ctx.store.complete_upload(request.bucket, request.key, request.query["uploadId"], parts,
                                           write_conditions(request))
    return Response.xml(document(
        "CompleteMultipartUploadResult", tag("Location", f"/{request.bucket}/{request.key}"),
        tag("Bucket", request.bucket), tag("Key", request.key), tag("ETag", f'"{meta.etag}"')))


async def abort_multipart_upload(ctx: Context, request: Request) -> Response:
    await ctx.store.abort_upload(request.bucket, request.key, request.query["uploadId"])
    return Response(204)


def _bounded_int(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name, str(default))
    number = _number(raw)
    if number is None:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, raw)
    return min(number, default)


async def list_parts(ctx: Context, request: Request) -> Response:
    upload_id = request.query["uploadId"]
    max_parts = _bounded_int(request, "max-parts", MAX_LISTED)
    marker = _bounded_int(request, "part-number-marker", MAX_PART_NUMBER) if "part-number-marker" in \
        request.query else 0
    parts = [p for p in await ctx.store.list_parts(request.bucket, request.key, upload_id) if p.number > marker]
    shown, truncated = parts[:max_parts], len(parts) > max_parts
    body = [tag("Bucket", request.bucket), tag("Key", request.key), tag("UploadId", upload_id),
            _initiator(request.user), owner_xml(), tag("StorageClass", "STANDARD"),
            tag("PartNumberMarker", marker), tag("MaxParts", max_parts),
            tag("IsTruncated", "true" if truncated else "false")]
    if shown:
        body.append(tag("NextPartNumberMarker", shown[-1].number))
    body += [f"<Part>{tag('PartNumber', p.number)}{tag('LastModified', iso_time(p.last_modified))}"
             f"{tag('ETag', chr(34) + p.etag + chr(34))}{tag('Size', p.size)}</Part>" for p in shown]
    return Response.xml(document("ListPartsResult", *body))


async def list_multipart_uploads(ctx: Context, request: Request) -> Response:
    prefix = request.query.get("prefix", "")
    key_marker = request.query.get("key-marker", "")
    id_marker = request.query.get("upload-id-marker", "")
    max_uploads = _bounded_int(request, "max-uploads", MAX_LISTED)
    uploads = [u for u in await ctx.store.list_uploads(request.bucket)
               if u.key.startswith(prefix) and (u.key, u.upload_id) > (key_marker, id_marker)]
    shown, truncated = uploads[:max_uploads], len(uploads) > max_uploads
    body = [tag("Bucket", request.bucket), tag("KeyMarker", key_marker), tag("UploadIdMarker", id_marker),
            tag("Prefix", prefix), tag("MaxUploads", max_uploads),
            tag("IsTruncated", "true" if truncated else "false")]
    if truncated:
        body += [tag("NextKeyMarker", shown[-1].key), tag("NextUploadIdMarker", shown[-1].upload_id)]
    body += [f"<Upload>{tag('Key', u.key)}{tag('UploadId', u.upload_id)}{_initiator(u.initiator)}"
             f"<Owner>{tag('ID', OWNER_ID)}{tag('DisplayName', OWNER_ID)}</Owner>"
             f"{tag('StorageClass', 'STANDARD')}{tag('Initiated', iso_time(u.initiated))}</Upload>"
             for u in shown]
    return Response.xml(document("ListMultipartUploadsResult", *body))
