"""The one place a read's data path is decided: served by this worker, or redirected to the holder.

Serving here covers both "local" and "proxy": the reader streams each block from this worker's cache, or
from the worker that holds or owns it (cache.cluster.routing), or from the origin. Redirecting sends the client a
307 to the worker that holds the first block it asked for, with a short-lived HMAC token in the Location
so the target serves the request although the client dropped its Authorization header on the way; a
request carrying a valid token is always served where it lands, so membership changes cannot loop it.

A token stands in for authentication of exactly one request: the operation (GetObject or HeadObject),
the HTTP method, the bucket and the key of the request that was redirected, for the user it was made
by, until it expires. Whoever holds a Location can repeat that read and nothing else: a request with a
token whose operation is not redirectable (a PUT, a tagging call, a copy, a delete, a GET of ?tagging...)
is refused 403, never authenticated by the token (and not by anything else it carries).

Who is redirected (cluster.data_path):
- proxy: nobody. boto3, awscli and s3torchconnector never follow a 3xx, so this is the default.
- redirect: every object GET/HEAD (never a write, never a bucket-level call).
- auto: object GET/HEAD from clients known to follow a 307 correctly (s3fs/aiobotocore, the AWS SDK for
  C++ as used by pyarrow and Triton, rclone, curl); everyone else is proxied.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from cache.blocks.reader import block_id
from cache.cluster.placement import placement_id
from cache.s3.errors import S3Error
from proxy.conditions import parse_range
from proxy.context import Context
from proxy.http import Request, Response
from proxy.operations import Operation
from proxy.xml import document, tag

TOKEN_PARAMS = ("x-s3cache-exp", "x-s3cache-user", "x-s3cache-sig")
FOLLOWERS = ("aiobotocore", "aws-sdk-cpp", "rclone/", "curl/")  # User-Agent marks of clients that follow 307
_TOKEN_VERSION = "s3cache-redirect-2"  # what the HMAC is over changed: tokens of the old form are refused
_MAX_EXPIRY_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Token:
    """The redirect token a request carried in its query (taken out of it), not yet checked."""

    expiry: str
    user: str
    signature: str


def _signature(secret: str, operation: str, method: str, bucket: str, key: str, expiry: str, user: str) -> str:
    # JSON: no bucket, key or user can shift a field boundary ("a\nb" + "c" never signs like "a" + "b\nc")
    message = json.dumps([_TOKEN_VERSION, operation, method, bucket, key, expiry, user]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def take_token(request: Request) -> Token | None:
    """Remove a redirect token from the query (it is never a parameter of the operation); None if there is none."""
    if "x-s3cache-sig" not in request.query:
        return None
    expiry, user, signature = (request.query.pop(name, "") for name in TOKEN_PARAMS)
    return Token(expiry, user, signature)


def check_token(ctx: Context, request: Request, operation: Operation, token: Token) -> None:
    """Admit a request by its redirect token (the user is set from it), or raise AccessDenied.

    Only for a redirectable operation (GetObject, HeadObject), and only when the token was made for this
    operation, method, bucket and key, by this user, and has not expired."""
    if not operation.redirectable:
        raise S3Error("AccessDenied", f"A redirect token admits only the read it was issued for, never "
                      f"{operation.name}; send this request, signed, to the original endpoint")
    cluster = ctx.settings.cluster
    secrets = [s.get_secret_value() for s in (cluster.secret, cluster.previous_secret) if s is not None]
    expiry = token.expiry
    fresh = expiry.isascii() and expiry.isdigit() and len(expiry) <= _MAX_EXPIRY_DIGITS and int(expiry) >= time.time()
    valid = False
    for secret in secrets if fresh else ():  # the previous secret too, during a rotation; every one is tried
        if secret:
            valid |= hmac.compare_digest(token.signature.encode(), _signature(
                secret, operation.name, request.method, request.bucket, request.key, expiry, token.user).encode())
    if not valid:
        raise S3Error("AccessDenied", "The redirect token is invalid, has expired or was issued for another "
                      "request; send the request again to the original endpoint")
    request.user = token.user or None


def follows_redirects(user_agent: str) -> bool:
    agent = user_agent.lower()
    return any(mark in agent for mark in FOLLOWERS)


async def redirect(ctx: Context, request: Request, operation: Operation, landed_by_token: bool) -> Response | None:
    """A 307 to the worker holding the requested bytes, or None to serve the request here."""
    stack = ctx.stack
    mode = ctx.settings.cluster.data_path
    if landed_by_token or mode == "proxy" or not operation.redirectable:
        return None
    if stack is None or stack.cluster is None or stack.blocks is None or stack.namespace is None:
        return None
    if mode == "auto" and not follows_redirects(request.headers.get("user-agent", "")):
        return None
    mount = stack.namespace.mount(request.bucket)  # resolved once: the block is named by the origin's names
    if not mount.cached:
        return None
    meta = await mount.store.head_object(mount.target, mount.key(request.key))
    span = parse_range(request.headers.get("range"), meta.size) if meta.size else None
    block_size = ctx.settings.cache.block_size_bytes
    index = (span[0] if span else 0) // block_size
    bid = block_id(mount.target, meta.key, meta.etag, index, block_size)
    if bid in stack.blocks:
        return None
    # An empty route: this worker holds or fills the block, so it serves the read itself.
    route = await stack.cluster.route(bid, placement_id(mount.target, meta.key, index))
    if not route:
        return None
    target = stack.cluster.url_of(route[0])
    return _temporary_redirect(ctx, request, operation, target)


def _temporary_redirect(ctx: Context, request: Request, operation: Operation, target: str) -> Response:
    secret = ctx.settings.cluster.secret.get_secret_value() if ctx.settings.cluster.secret is not None else ""
    expiry = str(int(time.time() + ctx.settings.cluster.redirect_token_ttl_s))
    user = request.user or ""
    signature = _signature(secret, operation.name, request.method, request.bucket, request.key, expiry, user)
    token = {"x-s3cache-exp": expiry, "x-s3cache-user": user, "x-s3cache-sig": signature}
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
