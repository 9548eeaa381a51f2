"""ACLs, answered as a bucket whose Object Ownership is BucketOwnerEnforced answers them (ACLs disabled, as S3
makes every new bucket since 2023): the owner has FULL_CONTROL of every bucket and object, and nothing else.

GetBucketAcl and GetObjectAcl answer that policy; PutBucketAcl and PutObjectAcl accept only an ACL that says the
same (``private``, ``bucket-owner-full-control``, or an AccessControlPolicy granting the owner alone
FULL_CONTROL) and change nothing; any other is 400 AccessControlListNotSupported. GetBucketOwnershipControls
answers BucketOwnerEnforced. The ACL headers of writes (``x-amz-acl``, ``x-amz-grant-*``) are judged by
``proxy.headers.check_acl_headers``.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from cache.s3.errors import S3Error
from proxy.body import read_xml_body
from proxy.context import OWNER_ID, Context
from proxy.handlers.buckets import owner_xml
from proxy.headers import acls_disabled, check_acl_headers, check_version_id
from proxy.http import Request, Response
from proxy.xml import document, parse, tag

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
FULL_CONTROL = "FULL_CONTROL"


def access_control_policy() -> bytes:
    """The one ACL there is: the owner, with FULL_CONTROL (as S3 sends it, the grantee typed by xsi:type)."""
    grantee = (f'<Grantee xmlns:xsi="{_XSI}" xsi:type="CanonicalUser">{tag("ID", OWNER_ID)}'
               f'{tag("DisplayName", OWNER_ID)}</Grantee>')
    return document("AccessControlPolicy", owner_xml(),
                    f"<AccessControlList><Grant>{grantee}{tag('Permission', FULL_CONTROL)}</Grant></AccessControlList>")


def _owner_alone(policy: Element) -> bool:
    """Whether an AccessControlPolicy grants the owner FULL_CONTROL and nobody anything (its Owner, when named,
    the owner too)."""
    owner_id = policy.findtext("Owner/ID")
    if owner_id is not None and owner_id.strip() != OWNER_ID:
        return False
    grants = policy.findall("AccessControlList/Grant")
    for grant in grants:
        grantee = grant.find("Grantee")
        if grantee is None:
            return False
        kind = next((value for name, value in grantee.attrib.items() if name.rsplit("}", 1)[-1] == "type"),
                    "CanonicalUser")
        if kind != "CanonicalUser" or (grantee.findtext("ID") or "").strip() != OWNER_ID:
            return False
        if (grant.findtext("Permission") or "").strip() != FULL_CONTROL:
            return False
    return bool(grants)


async def _check_put(request: Request) -> None:
    """A PutBucketAcl or PutObjectAcl: an ACL in a header or in the body (not both, not neither), accepted when it
    leaves the owner alone with full control."""
    named = check_acl_headers(request)
    body = await read_xml_body(request)
    if not body.strip():
        if not named:
            raise S3Error("MissingSecurityHeader")
        return
    if named:
        raise S3Error("UnexpectedContent")
    try:
        policy = parse(body, "AccessControlPolicy")
    except S3Error:
        raise S3Error("MalformedACLError") from None
    if policy.find("AccessControlList") is None:
        raise S3Error("MalformedACLError")
    if not _owner_alone(policy):
        raise acls_disabled()


async def get_bucket_acl(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    return Response.xml(access_control_policy())


async def put_bucket_acl(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    await _check_put(request)
    return Response(200, {"content-length": "0"})


async def get_object_acl(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    await ctx.store.head_object(request.bucket, request.key)
    return Response.xml(access_control_policy())


async def put_object_acl(ctx: Context, request: Request) -> Response:
    check_version_id(request)
    await ctx.store.head_object(request.bucket, request.key)
    await _check_put(request)
    return Response(200, {"content-length": "0"})


async def get_bucket_ownership_controls(ctx: Context, request: Request) -> Response:
    await ctx.store.head_bucket(request.bucket)
    return Response.xml(document("OwnershipControls",
                                 "<Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule>"))
