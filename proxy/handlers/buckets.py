"""Bucket operations: ListBuckets, HeadBucket, CreateBucket, DeleteBucket, location and versioning."""

from __future__ import annotations

from proxy.body import read_xml_body
from proxy.context import OWNER_ID, Context
from proxy.http import Request, Response
from proxy.xml import document, iso_time, parse, tag


def owner_xml() -> str:
    return f"<Owner>{tag('ID', OWNER_ID)}{tag('DisplayName', OWNER_ID)}</Owner>"


async def list_buckets(ctx: Context, request: Request) -> Response:
    buckets = await ctx.store.list_buckets()
    entries = "".join(
        f"<Bucket>{tag('Name', b.name)}{tag('CreationDate', iso_time(b.created))}{tag('BucketRegion', ctx.region)}"
        "</Bucket>" for b in buckets)
    return Response.xml(document("ListAllMyBucketsResult", owner_xml(), f"<Buckets>{entries}</Buckets>"))


async def head_bucket(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    return Response(200, {"x-amz-bucket-region": ctx.region, "content-length": "0"})


async def create_bucket(ctx: Context, request: Request) -> Response:
    body = await read_xml_body(request)
    if body.strip():
        parse(body, "CreateBucketConfiguration")  # well-formed is all we need: there is one region
    await ctx.store.create_bucket(request.bucket)
    return Response(200, {"location": f"/{request.bucket}"})


async def delete_bucket(ctx: Context, request: Request) -> Response:
    await ctx.store.delete_bucket(request.bucket)
    return Response(204)


async def get_bucket_location(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    region = "" if ctx.region == "us-east-1" else ctx.region  # S3 reports us-east-1 as an empty constraint
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/' \
           f'2006-03-01/">{region}</LocationConstraint>'
    return Response.xml(body.encode())


async def get_bucket_versioning(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    return Response.xml(document("VersioningConfiguration"))  # never enabled: no Status element
