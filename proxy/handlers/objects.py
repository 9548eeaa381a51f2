"""Object operations: GetObject, HeadObject, PutObject, CopyObject, DeleteObject, DeleteObjects."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cache.blocks.prefix import cached
from cache.s3.errors import S3Error, invalid_argument
from cache.s3.model import NewObject, ObjectMeta
from cache.storage.directory.store import DirectoryStore
from proxy.body import body_check, decoded_body, read_xml_body, sent_checksums
from proxy.conditions import check_preconditions, parse_range, part_number, range_start
from proxy.context import Context
from proxy.headers import (
    apply_response_overrides,
    check_acl_headers,
    check_version_id,
    checksum_headers,
    copy_source,
    delete_conditions,
    etag_condition,
    new_object,
    object_headers,
    tags_from_header,
    write_conditions,
)
from proxy.http import Request, Response
from proxy.policy import denied_keys
from proxy.xml import child_text, document, iso_time, parse, tag

SMALL_READ_BYTES = 256 << 10  # read in one go and sent in one message
CHUNK_BYTES = 1 << 20
LARGE_CHUNK_BYTES = 4 << 20  # for long streams: fewer sends, less CPU per GB
LARGE_STREAM_BYTES = 16 << 20
MAX_DELETE_KEYS = 1000
VERSION_ATTEMPTS = 5  # opens of a GET whose version is replaced at the origin before its first byte is sent


def _checksum_headers(request: Request, meta: ObjectMeta) -> dict[str, str]:
    if request.headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return {}
    return checksum_headers(meta)


async def _with_checksums(ctx: Context, request: Request, meta: ObjectMeta) -> ObjectMeta:
    """A whole GET in checksum mode of an object known only from a ranged read asks for its checksums once."""
    if meta.checksums_known or request.headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return meta
    full = await ctx.store.head_object(request.bucket, request.key, checksums=True)
    return full if full.etag == meta.etag else meta


def _part_headers(headers: dict[str, str], meta: ObjectMeta, start: int, end: int) -> int:
    """A part read's answer, as S3 gives it: 206 with the part's place in the object and its length, and
    x-amz-mp-parts-count for a multipart object (an object not uploaded in parts is its own part 1, with no
    count); an empty object's part 1 is 200, having no byte to name."""
    if meta.parts_count is not None:
        headers["x-amz-mp-parts-count"] = str(meta.parts_count)
    headers["content-length"] = str(end - start)
    if meta.size == 0:
        return 200
    headers["content-range"] = f"bytes {start}-{end - 1}/{meta.size}"
    return 206


async def _head_part(ctx: Context, request: Request, number: int) -> Response:
    meta, start, end = await ctx.store.head_part(request.bucket, request.key, number)
    check_preconditions(request.headers, meta)
    headers = object_headers(meta)
    status = _part_headers(headers, meta, start, end)
    apply_response_overrides(request, headers)
    return Response(status, headers)


async def _held(ctx: Context, request: Request, meta: ObjectMeta) -> bool:
    """Is every block of this version in the cluster's cache (`s3cache load` skips what is)? A directory's
    objects are local already; an origin read through without a cache holds nothing."""
    stack, namespace = ctx.stack, ctx.namespace
    if stack is None or namespace is None:
        return True
    mount = namespace.mount(request.bucket)
    if not mount.cached:
        return isinstance(mount.store, DirectoryStore)
    if stack.reader is None:
        return False
    bucket, key = namespace.origin_name(request.bucket, request.key)
    return await cached(stack.reader, bucket, key, meta.etag, meta.size)


async def head_object(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    number = part_number(request.query, request.headers)
    if number is not None:
        return await _head_part(ctx, request, number)
    checksum_mode = request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    meta = await ctx.store.head_object(request.bucket, request.key, checksums=checksum_mode)
    check_preconditions(request.headers, meta)
    if "only-if-cached" in request.headers.get("cache-control", "").lower() and not await _held(ctx, request, meta):
        return Response(504, {"content-length": "0"})  # RFC 9111 5.2.1.7: not all of it is in the cache
    headers = object_headers(meta)
    span = parse_range(request.headers.get("range"), meta.size)
    if span is None:
        headers["content-length"] = str(meta.size)
        headers.update(_checksum_headers(request, meta))
        status = 200
    else:
        headers["content-length"] = str(span[1] - span[0])
        headers["content-range"] = f"bytes {span[0]}-{span[1] - 1}/{meta.size}"
        status = 206
    apply_response_overrides(request, headers)
    return Response(status, headers)


async def get_object(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    for _ in range(VERSION_ATTEMPTS):
        try:
            return await _get_version(ctx, request)
        except _VersionGone:
            pass  # its metadata is forgotten: the next open finds the version the origin has now
    raise S3Error("ServiceUnavailable", "The object kept changing while it was read; retry")


class _VersionGone(Exception):
    """The version a GET opened is no longer at the origin, found before anything of the answer was sent."""


async def _get_version(ctx: Context, request: Request) -> Response:
    number = part_number(request.query, request.headers)
    if number is not None:
        opened, start, end = await ctx.store.open_part(request.bucket, request.key, number)
    else:
        opened = await ctx.store.open_object(request.bucket, request.key, range_start(request.headers.get("range")))
    try:
        meta = opened.meta
        check_preconditions(request.headers, meta)
        headers = object_headers(meta)
        span = parse_range(request.headers.get("range"), meta.size) if number is None else None
        if number is not None:
            status = _part_headers(headers, meta, start, end)
        elif span is None:
            start, end, status = 0, meta.size, 200
            headers.update(_checksum_headers(request, await _with_checksums(ctx, request, meta)))
        else:
            (start, end), status = span, 206
            headers["content-range"] = f"bytes {start}-{end - 1}/{meta.size}"
        headers["content-length"] = str(end - start)
        apply_response_overrides(request, headers)
        # The first bytes are read before the status is committed: a version gone at the origin is then opened
        # anew (the client's own conditions were judged above, so a 412 here is the version's).
        try:
            if end - start <= SMALL_READ_BYTES:
                data = await opened.read_small(start, end)
                return Response(status, headers, data, len(data))
            chunk = LARGE_CHUNK_BYTES if end - start >= LARGE_STREAM_BYTES else CHUNK_BYTES
            body = opened.iter_range(start, end, chunk)
            first = await anext(body)
        except S3Error as error:
            if error.code == "PreconditionFailed":
                raise _VersionGone from None
            raise
        return Response(status, headers, _after(first, body), end - start)
    except BaseException:
        opened.close()
        raise


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """first, then the rest of the stream it was read from."""
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        closer = getattr(rest, "aclose", None)
        if closer is not None:
            await closer()


async def put_object(ctx: Context, request: Request) -> Response:
    new = new_object(request)
    check = body_check(request)
    sent = sent_checksums(check)
    new = NewObject(new.headers, new.user_metadata, new.tags, sent.values, sent.trailing)  # filled as the body ends
    meta = await ctx.store.put_object(request.bucket, request.key, decoded_body(request, check), new,
                                      write_conditions(request), size=check.expected_length)
    headers = {"etag": f'"{meta.etag}"'}
    headers.update({f"x-amz-checksum-{name}": value for name, value in check.checksums.items()})
    return Response(200, headers)


def _directive(request: Request, header: str) -> str:
    value = request.headers.get(header, "COPY").upper()
    if value not in ("COPY", "REPLACE"):
        raise invalid_argument(f"Unknown {header}", header, value)
    return value


async def copy_object(ctx: Context, request: Request) -> Response:
    check_acl_headers(request)  # whatever the metadata directive
    conditions = write_conditions(request)  # the destination's; x-amz-copy-source-if-* are the source's
    src_bucket, src_key = copy_source(request)
    metadata_directive = _directive(request, "x-amz-metadata-directive")
    tagging_directive = _directive(request, "x-amz-tagging-directive")
    if (src_bucket, src_key) == (request.bucket, request.key) and metadata_directive == "COPY" \
            and "x-amz-storage-class" not in request.headers:
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                      "itself without changing the object's metadata, storage class, website redirect location "
                      "or encryption attributes.")
    source = await ctx.store.head_object(src_bucket, src_key)
    check_preconditions(request.headers, source, prefix="x-amz-copy-source-")
    new = new_object(request) if metadata_directive == "REPLACE" else None
    tags = tags_from_header(request) if tagging_directive == "REPLACE" else None
    meta = await ctx.store.copy_object(src_bucket, src_key, request.bucket, request.key, new, tags, conditions)
    body = document("CopyObjectResult", tag("LastModified", iso_time(meta.last_modified)),
                    tag("ETag", f'"{meta.etag}"'))
    return Response.xml(body)


async def delete_object(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    await ctx.store.delete_object(request.bucket, request.key, delete_conditions(request))
    return Response(204)


async def delete_objects(ctx: Context, request: Request) -> Response:
    root = parse(await read_xml_body(request), "Delete")
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    objects = root.findall("Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"A Delete request names 1 to {MAX_DELETE_KEYS} objects")
    items = []
    for item in objects:  # the whole request is checked before anything is deleted
        key = child_text(item, "Key")
        if key is None:
            raise S3Error("MalformedXML", "Each Object must have a Key")
        items.append((key, child_text(item, "VersionId"), etag_condition(child_text(item, "ETag"))))
    await ctx.store.head_bucket(request.bucket)
    # Each key is judged by the access policy: a refused one is its own AccessDenied, the rest are deleted.
    # Versions other than "null" do not exist in these unversioned buckets; the rest go in one call (one
    # DeleteObjects request to an S3 origin, but for the keys deleted only if their ETag matches).
    refused = denied_keys(ctx.policy, request, request.operation, (key for key, _, _ in items))
    wanted = [(key, etag) for key, version, etag in items if version in (None, "null") and key not in refused]
    outcomes = iter(await ctx.store.delete_objects(request.bucket, [key for key, _ in wanted],
                                                   [etag for _, etag in wanted]) if wanted else [])
    results = []
    for key, version, _ in items:
        version_xml = tag("VersionId", version) if version is not None else ""
        if key in refused:
            error: S3Error | None = S3Error("AccessDenied", "Access Denied")
        elif version in (None, "null"):
            error = next(outcomes)
        else:
            error = S3Error("NoSuchVersion", "The specified version does not exist.")
        if error is not None:
            results.append(f"<Error>{tag('Key', key)}{version_xml}{tag('Code', error.code)}"
                           f"{tag('Message', error.message)}</Error>")
        elif not quiet:
            results.append(f"<Deleted>{tag('Key', key)}{version_xml}</Deleted>")
    return Response.xml(document("DeleteResult", *(r for r in results if r)))

