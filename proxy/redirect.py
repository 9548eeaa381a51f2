"""The one place a read's data path is decided: served by this worker, or redirected to the holder.

Serving here covers both "local" and "proxy": the reader streams each block from this worker's cache, or
from the worker that holds or owns it (cache.cluster.routing), or from the origin. Redirecting sends the client a
307 to the worker that holds the first block it asked for, with a short-lived HMAC token in the Location
so the target serves the request although the client dropped its Authorization header on the way; a
request carrying a valid token is always served where it lands, so membership changes cannot loop it.

Who is redirected (cluster.data_path):
- proxy: nobody. boto3, awscli and s3torchconnector never follow a 3xx, so this is the default.
- redirect: every object GET/HEAD (never a write, never a bucket-level call).
- auto: object GET/HEAD from clients known to follow a 307 correctly (s3fs/aiobotocore, the AWS SDK for
  C++ as used by pyarrow and Triton, rclone, curl); everyone else is proxied.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

from cache.blocks.reader import block_id
from cache.s3.errors import S3Error
from proxy.conditions import parse_range
from proxy.context import Context
from proxy.http import Request, Response
from proxy.xml import document, tag

TOKEN_PARAMS = ("x-s3cache-exp", "x-s3cache-user", "x-s3cache-sig")
REDIRECTED_OPERATIONS = frozenset({"GetObject", "HeadObject"})
FOLLOWERS = ("aiobotocore", "aws-sdk-cpp", "rclone/", "curl/")  # User-Agent marks of clients that follow 307


def _signature(secret: str, method_class: str, bucket: str, key: str, expiry: str, user: str) -> str:
    message = f"{method_class}\n{bucket}\n{key}\n{expiry}\n{user}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_token(ctx: Context, request: Request) -> bool:
    """Consume a redirect token from the query: True if one was there and is valid (the user is set from it)."""
    if "x-s3cache-sig" not in request.query:
        return False
    expiry = request.query.pop("x-s3cache-exp", "")
    user = request.query.pop("x-s3cache-user", "")
    signature = request.query.pop("x-s3cache-sig", "")
    secret = ctx.settings.cluster.secret
    valid = bool(secret) and expiry.isdigit() and int(expiry) >= time.time() and hmac.compare_digest(
        signature, _signature(secret or "", "read", request.bucket, request.key, expiry, user))
    if not valid:
        raise S3Error("AccessDenied", "The redirect token is invalid or has expired; send the request again to "
                      "the original endpoint")
    request.user = user or None
    return True


def follows_redirects(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(mark in agent for mark in FOLLOWERS)


async def redirect(ctx: Context, request: Request, landed_by_token: bool) -> Response | None:
    """A 307 to the worker holding the requested bytes, or None to serve the request here."""
    stack = ctx.stack
    mode = ctx.settings.cluster.data_path
    if landed_by_token or mode == "proxy" or request.operation not in REDIRECTED_OPERATIONS:
        return None
    if stack is None or stack.cluster is None or stack.blocks is None or stack.namespace is None:
        return None
    if mode == "auto" and not follows_redirects(request.headers.get("user-agent", "")):
        return None
    if not stack.namespace.mount(request.bucket).cached:
        return None
    meta = await ctx.store.head_object(request.bucket, request.key)
    span = parse_range(request.headers.get("range"), meta.size) if meta.size else None
    block_size = ctx.settings.cache.block_size_bytes
    target_bucket, target_key = stack.namespace.origin_name(request.bucket, meta.key)
    bid = block_id(target_bucket, target_key, meta.etag, (span[0] if span else 0) // block_size, block_size)
    if bid in stack.blocks:
        return None
    candidates = await stack.cluster.candidates(bid)
    if not candidates or candidates[0] == stack.cluster.worker_id:
        return None
    target = stack.cluster.url_of(candidates[0])
    return _temporary_redirect(ctx, request, target)


def _temporary_redirect(ctx: Context, request: Request, target: str) -> Response:
    secret = ctx.settings.cluster.secret or ""
    expiry = str(int(time.time() + ctx.settings.cluster.redirect_token_ttl_s))
    user = request.user or ""
    token = {"x-s3cache-exp": expiry, "x-s3cache-user": user,
             "x-s3cache-sig": _signature(secret, "read", request.bucket, request.key, expiry, user)}
    query = urlencode({**request.query, **token})
    location = f"{target}/{quote(request.bucket)}/{quote(request.key, safe='/~')}?{query}"
    endpoint = target.split("://", 1)[-1]
    body = document("Error", tag("Code", "TemporaryRedirect"),
                    tag("Message", "Please re-send this request to the specified temporary endpoint. Continue "
                        "to use the original request endpoint for future requests."),
                    tag("Endpoint", endpoint), tag("Bucket", request.bucket), tag("RequestId", request.request_id),
                    namespace=False)
    # No Content-Length and no Content-Type on the 307 (the body goes chunked): the AWS SDK for C++ (pyarrow,
    # Triton) follows the redirect inside curl and keeps the FIRST value of every header it saw, so a
    # Content-Length here would become the object's size (a HEAD then reports 337 bytes, a read stops short).
    return Response(307, {"location": location, "x-amz-bucket-region": ctx.region}, _one_chunk(body), len(body))


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data
