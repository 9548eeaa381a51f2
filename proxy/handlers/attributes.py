"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in one answer, as S3 gives it."""

from __future__ import annotations

from collections.abc import Callable

from cache.s3.errors import invalid_argument
from cache.s3.model import MAX_PART_NUMBER, ObjectMeta, multipart_etag_parts
from proxy.context import Context
from proxy.handlers.multipart import MAX_LISTED, bounded_int, checksum_xml, object_checksum_xml
from proxy.headers import check_version_id
from proxy.http import Request, Response
from proxy.xml import document, http_time, tag

ATTRIBUTES_HEADER = "x-amz-object-attributes"
STANDARD = "STANDARD"


def _asked(request: Request) -> set[str]:
    names = {name.strip() for name in request.headers.get(ATTRIBUTES_HEADER, "").split(",") if name.strip()}
    if not names:
        raise invalid_argument("Empty Attribute List", ATTRIBUTES_HEADER, "")
    unknown = sorted(names - set(_SIMPLE) - {"ObjectParts"})
    if unknown:
        raise invalid_argument("Invalid attribute name specified.", ATTRIBUTES_HEADER, unknown[0])
    return names


def _checksum(meta: ObjectMeta) -> str:
    return f"<Checksum>{object_checksum_xml(meta)}</Checksum>" if meta.checksums else ""


# the attributes read from the object's metadata alone, each as its XML
_SIMPLE: dict[str, Callable[[ObjectMeta], str]] = {
    "ETag": lambda meta: tag("ETag", meta.etag),
    "Checksum": _checksum,
    "StorageClass": lambda meta: tag("StorageClass", meta.headers.get("x-amz-storage-class", STANDARD)),
    "ObjectSize": lambda meta: tag("ObjectSize", meta.size),
}


async def _object_parts(ctx: Context, request: Request, meta: ObjectMeta) -> str:
    """ObjectParts of a multipart object, paged by x-amz-max-parts and x-amz-part-number-marker; nothing for an
    object not uploaded in parts, as S3 answers it."""
    count = meta.parts_count or multipart_etag_parts(meta.etag)
    if count is None:
        return ""
    max_parts = bounded_int(request.headers.get("x-amz-max-parts", str(MAX_LISTED)), "x-amz-max-parts", MAX_LISTED)
    marker = bounded_int(request.headers.get("x-amz-part-number-marker", "0"), "x-amz-part-number-marker",
                         MAX_PART_NUMBER)
    # S3 lists the parts (Part elements) of an object with a checksum only
    parts = await ctx.store.object_parts(request.bucket, request.key) if meta.checksums else []
    later = [part for part in parts if part.number > marker]
    shown, truncated = later[:max_parts], len(later) > max_parts
    body = [tag("PartsCount", count), tag("PartNumberMarker", marker), tag("MaxParts", max_parts),
            tag("IsTruncated", "true" if truncated else "false")]
    if shown:
        body.append(tag("NextPartNumberMarker", shown[-1].number))
    body += [f"<Part>{tag('PartNumber', p.number)}{tag('Size', p.size)}{checksum_xml(p.checksums)}</Part>"
             for p in shown]
    return f"<ObjectParts>{''.join(body)}</ObjectParts>"


async def get_object_attributes(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    asked = _asked(request)
    # ObjectParts too: whether the object has a checksum says whether its parts are listed
    meta = await ctx.store.head_object(request.bucket, request.key, checksums=bool(asked & {"Checksum", "ObjectParts"}))
    body = [render(meta) for name, render in _SIMPLE.items() if name in asked]
    if "ObjectParts" in asked:
        body.append(await _object_parts(ctx, request, meta))
    response = Response.xml(document("GetObjectAttributesResponse", *body))
    response.headers["last-modified"] = http_time(meta.last_modified)
    return response
