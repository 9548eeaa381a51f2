"""Bucket operations: ListBuckets, HeadBucket, CreateBucket, DeleteBucket, location, versioning, and the
configuration probes (CORS, policy, lifecycle, encryption, public access block, website, replication)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from cache.s3.errors import S3Error, invalid_argument
from cache.s3.names import check_bucket
from proxy.body import read_xml_body
from proxy.context import OWNER_ID, Context
from proxy.headers import check_acl_headers
from proxy.http import Request, Response
from proxy.xml import document, iso_time, parse, tag

MAX_BUCKETS = 10000  # ListBuckets: the most one page holds, and the page size when max-buckets is not given
# The one region where re-creating a bucket you own succeeds (200); everywhere else it is BucketAlreadyOwnedByYou.
LEGACY_REGION = "us-east-1"


def owner_xml() -> str:
    return f"<Owner>{tag('ID', OWNER_ID)}{tag('DisplayName', OWNER_ID)}</Owner>"


def _max_buckets(request: Request) -> int:
    raw = request.query.get("max-buckets")
    if raw is None:
        return MAX_BUCKETS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BUCKETS:
        raise invalid_argument(f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}",
                               "max-buckets", raw)
    return value


def _bucket_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8")).decode()


def _bucket_untoken(token: str) -> str:
    try:
        return base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token) \
            from None


async def list_buckets(ctx: Context, request: Request) -> Response:
    """ListBuckets, paged as S3 pages it since 2024: max-buckets, continuation-token (the last name of the
    page before), prefix and bucket-region filter; ContinuationToken when more remain, Prefix echoed."""
    max_buckets = _max_buckets(request)
    token = request.query.get("continuation-token")
    after = _bucket_untoken(token) if token else ""
    prefix = request.query.get("prefix", "")
    region = request.query.get("bucket-region")
    buckets = [] if region is not None and region != ctx.region else \
        [b for b in await ctx.store.list_buckets() if b.name.startswith(prefix) and b.name > after]
    page = buckets[:max_buckets]
    entries = "".join(
        f"<Bucket>{tag('Name', b.name)}{tag('CreationDate', iso_time(b.created))}{tag('BucketRegion', ctx.region)}"
        "</Bucket>" for b in page)
    parts = [owner_xml(), f"<Buckets>{entries}</Buckets>"]
    if len(buckets) > max_buckets:
        parts.append(tag("ContinuationToken", _bucket_token(page[-1].name)))
    if "prefix" in request.query:
        parts.append(tag("Prefix", prefix))
    return Response.xml(document("ListAllMyBucketsResult", *parts))


async def head_bucket(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    return Response(200, {"x-amz-bucket-region": ctx.region, "content-length": "0"})


async def create_bucket(ctx: Context, request: Request) -> Response:
    """The name is judged here, whatever store is behind (an origin must never be asked for an invalid one);
    re-creating a bucket you own is 200 in us-east-1 and 409 BucketAlreadyOwnedByYou elsewhere, as S3 answers
    in the region the worker reports, whatever the store behind would say."""
    check_bucket(request.bucket)
    check_acl_headers(request)  # ACLs disabled: only an owner-only canned ACL, which changes nothing
    body = await read_xml_body(request)
    if body.strip():
        parse(body, "CreateBucketConfiguration")  # well-formed is all we need: there is one region
    if ctx.region != LEGACY_REGION:
        try:  # an origin in us-east-1 would answer 200: the region reported to clients decides
            await ctx.store.head_bucket(request.bucket)
        except S3Error:
            pass
        else:
            raise S3Error("BucketAlreadyOwnedByYou", extra={"BucketName": request.bucket})
    try:
        await ctx.store.create_bucket(request.bucket)
    except S3Error as error:
        if error.code != "BucketAlreadyOwnedByYou" or ctx.region != LEGACY_REGION:
            raise
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


def _not_configured(code: str, name: str) -> Callable[[Context, Request], Awaitable[Response]]:
    """The Get of a bucket configuration s3cache never holds: S3's answer for a bucket that has none (404 with
    the code S3 uses for that configuration), once the bucket is known to exist (else NoSuchBucket)."""

    async def handler(ctx: Context, request: Request) -> Response:
        await ctx.store.head_bucket(request.bucket)
        raise S3Error(code, extra={"BucketName": request.bucket})

    handler.__name__ = handler.__qualname__ = name
    return handler


get_bucket_cors = _not_configured("NoSuchCORSConfiguration", "get_bucket_cors")
get_bucket_policy = _not_configured("NoSuchBucketPolicy", "get_bucket_policy")
get_bucket_lifecycle = _not_configured("NoSuchLifecycleConfiguration", "get_bucket_lifecycle")
get_bucket_encryption = _not_configured("ServerSideEncryptionConfigurationNotFoundError", "get_bucket_encryption")
get_public_access_block = _not_configured("NoSuchPublicAccessBlockConfiguration", "get_public_access_block")
get_bucket_website = _not_configured("NoSuchWebsiteConfiguration", "get_bucket_website")
get_bucket_replication = _not_configured("ReplicationConfigurationNotFoundError", "get_bucket_replication")
