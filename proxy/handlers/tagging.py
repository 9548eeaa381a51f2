"""Tagging operations on objects and buckets."""

from __future__ import annotations

from cache.s3.errors import S3Error
from cache.s3.xml import tag_pairs, tagging_document
from proxy.body import read_xml_body
from proxy.context import Context
from proxy.headers import check_tags, check_version_id
from proxy.http import Request, Response
from proxy.xml import parse


async def _parse_tagging(request: Request) -> dict[str, str]:
    return check_tags(tag_pairs(parse(await read_xml_body(request), "Tagging")))


async def get_object_tagging(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    return Response.xml(tagging_document(await ctx.store.get_object_tags(request.bucket, request.key)))


async def put_object_tagging(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    tags = await _parse_tagging(request)
    await ctx.store.put_object_tags(request.bucket, request.key, tags)
    return Response(200)


async def delete_object_tagging(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    await ctx.store.put_object_tags(request.bucket, request.key, {})
    return Response(204)


async def get_bucket_tagging(ctx: Context, request: Request) -> Response:
    tags = await ctx.store.get_bucket_tags(request.bucket)
    if not tags:
        raise S3Error("NoSuchTagSet", extra={"BucketName": request.bucket})
    return Response.xml(tagging_document(tags))


async def put_bucket_tagging(ctx: Context, request: Request) -> Response:
    tags = await _parse_tagging(request)
    await ctx.store.put_bucket_tags(request.bucket, tags)
    return Response(204)


async def delete_bucket_tagging(ctx: Context, request: Request) -> Response:
    await ctx.store.put_bucket_tags(request.bucket, None)
    return Response(204)
