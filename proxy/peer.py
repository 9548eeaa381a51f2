"""The peer endpoint: another worker asks for bytes of a block this worker holds or owns.

``GET /_s3cache/peer/block?b=&k=&e=&s=&i=&lo=&hi=`` with the cluster secret; served from this worker's
cache or filled here from the origin, never forwarded again (no loops). lo == hi is a prefetch hint.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qsl

from cache.cluster.peers import SECRET_HEADER
from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta
from proxy.context import Context
from proxy.errors import error_response
from proxy.http import Receive, Response, Scope, Send, send_response

log = logging.getLogger("s3cache.peer")
_CHUNK_BYTES = 1 << 20


def _request_args(ctx: Context, scope: Scope) -> tuple[str, ObjectMeta, int, int, int]:
    secret = ctx.settings.cluster.secret
    offered = dict(scope["headers"]).get(SECRET_HEADER.encode(), b"").decode("latin-1")
    if not secret or not hmac.compare_digest(offered, secret):
        raise S3Error("AccessDenied", "Peer requests must carry the cluster secret")
    q = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    try:
        # A block is named by the object version's key, ETag and size: all a peer needs of the metadata.
        meta = ObjectMeta(key=q["k"], size=int(q["s"]), etag=q["e"], last_modified=0.0)
        index, lo, hi = int(q["i"]), int(q["lo"]), int(q["hi"])
        bucket = q["b"]
        block_size = int(q.get("bs", "0"))
    except (KeyError, ValueError):
        raise S3Error("InvalidRequest", "Malformed peer block request") from None
    if block_size and block_size != ctx.settings.cache.block_size_bytes:
        raise S3Error("InvalidRequest", f"Block size mismatch: the peer cuts {block_size}-byte blocks, this worker "
                      f"{ctx.settings.cache.block_size_bytes}")
    return bucket, meta, index, lo, hi


async def serve_peer(ctx: Context, scope: Scope, receive: Receive, send: Send) -> None:
    reader = ctx.stack.reader if ctx.stack is not None else None
    try:
        if reader is None or reader.cluster is None:
            raise S3Error("InvalidRequest", "This worker is not part of a cluster")
        bucket, meta, index, lo, hi = _request_args(ctx, scope)
        if lo == hi:
            reader.warm(bucket, meta, index)
            response = Response(200, {"content-length": "0"})
        else:
            stream = reader.local_block(bucket, meta, index, lo, hi, _CHUNK_BYTES)
            response = Response(200, {"content-length": str(hi - lo)}, stream, hi - lo)
    except S3Error as error:
        log.warning("peer request refused: %s", error)
        response = error_response(error, scope["path"], "peer", head=False)
    await send_response(send, response, "peer", head_only=False)
