"""Multipart operations: Create, UploadPart, UploadPartCopy, Complete, Abort, ListParts, ListMultipartUploads."""

from __future__ import annotations

import re
from dataclasses import replace
from xml.etree.ElementTree import Element

from cache.s3.checksums import ALGORITHMS, element_name, header_name, type_of, upload_checksum, well_formed
from cache.s3.errors import S3Error, invalid_argument
from cache.s3.model import MAX_PART_NUMBER, ObjectMeta, PartListing, SentChecksums, UploadInfo
from proxy.body import body_check, decoded_body, read_xml_body, sent_checksums
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


def checksum_xml(checksums: dict[str, str]) -> str:
    """Checksums as S3's XML carries them: ChecksumCRC32, ChecksumSHA256... elements."""
    return "".join(tag(element_name(name), value) for name, value in checksums.items())


async def create_multipart_upload(ctx: Context, request: Request) -> Response:
    algorithm, checksum_type = upload_checksum(request.headers.get("x-amz-checksum-algorithm"),
                                               request.headers.get("x-amz-checksum-type"))
    new = replace(new_object(request), checksum_algorithm=algorithm, checksum_type=checksum_type)
    upload_id = await ctx.store.create_upload(request.bucket, request.key, new, request.user or "")
    response = Response.xml(document("InitiateMultipartUploadResult", tag("Bucket", request.bucket),
                                     tag("Key", request.key), tag("UploadId", upload_id)))
    if algorithm:
        response.headers.update({"x-amz-checksum-algorithm": algorithm.upper(), "x-amz-checksum-type": checksum_type or ""})
    return response


async def upload_part(ctx: Context, request: Request) -> Response:
    number = _part_number(request)
    check = body_check(request)
    part = await ctx.store.upload_part(request.bucket, request.key, request.query["uploadId"], number,
                                       decoded_body(request, check), check.expected_length, sent_checksums(check))
    headers = {"etag": f'"{part.etag}"'}
    headers.update({header_name(name): value for name, value in {**check.checksums, **part.checksums}.items()})
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
                                 tag("ETag", f'"{part.etag}"'), checksum_xml(part.checksums)))


async def complete_multipart_upload(ctx: Context, request: Request) -> Response:
    root = parse(await read_xml_body(request, checksum_headers=False), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    sent = _complete_checksums(request)
    for element in root.findall("Part"):
        text, etag = element.findtext("PartNumber"), element.findtext("ETag")
        number = _number(text.strip()) if text is not None else None
        if text is None or etag is None or number is None:
            raise S3Error("MalformedXML", "Each Part must have a PartNumber and an ETag")
        if not 1 <= number <= MAX_PART_NUMBER or len(parts) == MAX_PART_NUMBER:  # S3: never InvalidPart
            raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                                   "partNumber", text.strip())
        parts.append((number, etag.strip()))
        sent.parts[number] = _part_checksums(element)
    meta = await ctx.store.complete_upload(request.bucket, request.key, request.query["uploadId"], parts,
                                           write_conditions(request), sent)
    return Response.xml(document(
        "CompleteMultipartUploadResult", tag("Location", f"/{request.bucket}/{request.key}"),
        tag("Bucket", request.bucket), tag("Key", request.key), tag("ETag", f'"{meta.etag}"'),
        object_checksum_xml(meta)))


def _part_checksums(element: Element) -> dict[str, str]:
    """The checksums a Complete's Part names (ChecksumCRC32...), each well-formed (else InvalidRequest)."""
    named = {name: (element.findtext(element_name(name)) or "").strip() for name in ALGORITHMS
             if element.find(element_name(name)) is not None}
    for name, value in named.items():
        if not well_formed(name, value):
            raise S3Error("InvalidRequest", f"Value for {element_name(name)} is invalid.")
    return named


def _complete_checksums(request: Request) -> SentChecksums:
    """A Complete's x-amz-checksum-<algorithm> (of the whole object; a composite one may end in -N) and -type."""
    whole = {name: value.strip() for name in ALGORITHMS if (value := request.headers.get(header_name(name)))}
    for name, value in whole.items():
        if not well_formed(name, value.rsplit("-", 1)[0] if "-" in value else value):
            raise S3Error("InvalidRequest", f"Value for {header_name(name)} header is invalid.")
    return SentChecksums({}, whole, request.headers.get("x-amz-checksum-type"))


def object_checksum_xml(meta: ObjectMeta) -> str:
    """An object's checksums and their type (where known) as CompleteMultipartUpload and GetObjectAttributes
    answer them."""
    checksum_type = type_of(meta.checksums, meta.checksum_type, meta.etag)
    return checksum_xml(meta.checksums) + (tag("ChecksumType", checksum_type) if checksum_type else "")


def _upload_checksum_xml(upload: UploadInfo | PartListing) -> str:
    """An upload's ChecksumAlgorithm and ChecksumType, as ListParts and ListMultipartUploads show them."""
    return (tag("ChecksumAlgorithm", upload.checksum_algorithm.upper()) if upload.checksum_algorithm else "") + \
        (tag("ChecksumType", upload.checksum_type) if upload.checksum_type else "")


async def abort_multipart_upload(ctx: Context, request: Request) -> Response:
    await ctx.store.abort_upload(request.bucket, request.key, request.query["uploadId"])
    return Response(204)


def bounded_int(raw: str, name: str, default: int) -> int:
    """A count or marker of a paged answer: ASCII digits (else InvalidArgument naming it), at most default."""
    number = _number(raw)
    if number is None:
        raise invalid_argument(f"Provided {name} not an integer or within integer range", name, raw)
    return min(number, default)


def _bounded_int(request: Request, name: str, default: int) -> int:
    return bounded_int(request.query.get(name, str(default)), name, default)


async def list_parts(ctx: Context, request: Request) -> Response:
    upload_id = request.query["uploadId"]
    max_parts = _bounded_int(request, "max-parts", MAX_LISTED)
    marker = _bounded_int(request, "part-number-marker", MAX_PART_NUMBER) if "part-number-marker" in \
        request.query else 0
    listing = await ctx.store.list_parts(request.bucket, request.key, upload_id)
    parts = [p for p in listing.parts if p.number > marker]
    shown, truncated = parts[:max_parts], len(parts) > max_parts
    body = [tag("Bucket", request.bucket), tag("Key", request.key), tag("UploadId", upload_id),
            _initiator(request.user), owner_xml(), tag("StorageClass", "STANDARD"),
            tag("PartNumberMarker", marker), tag("MaxParts", max_parts),
            tag("IsTruncated", "true" if truncated else "false")]
    body.append(_upload_checksum_xml(listing))
    if shown:
        body.append(tag("NextPartNumberMarker", shown[-1].number))
    body += [f"<Part>{tag('PartNumber', p.number)}{tag('LastModified', iso_time(p.last_modified))}"
             f"{tag('ETag', chr(34) + p.etag + chr(34))}{tag('Size', p.size)}{checksum_xml(p.checksums)}</Part>"
             for p in shown]
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
             f"{tag('StorageClass', 'STANDARD')}{tag('Initiated', iso_time(u.initiated))}{_upload_checksum_xml(u)}"
             "</Upload>"
             for u in shown]
    return Response.xml(document("ListMultipartUploadsResult", *body))
