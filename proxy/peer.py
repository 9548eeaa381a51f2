"""The peer endpoint: another worker asks for bytes of a block this worker holds or owns, or to open an object cold.

``GET /_s3cache/peer/block?b=&k=&e=&s=&i=&lo=&hi=`` signed with the cluster secret (cache.cluster.peers.sign_request:
this method, path and query, unexpired; the previous secret is accepted too during a rotation); served from this worker's
cache or filled here from the origin, never forwarded again (no loops). lo == hi is a prefetch hint.
``GET /_s3cache/peer/meta?b=&k=&i=&w=&d=``: this worker owns block i of an object the asking worker does not know
yet (w=1: the client reads it whole); it opens the object here (one origin request, for block i, which then
fills here) and answers the metadata as JSON (``ObjectMeta.to_json``), followed by the object's bytes when the
asker takes them (d=1), the read is whole and the object small (cache.cluster.peers.SMALL_OBJECT_BYTES).
``POST /_s3cache/peer/free?b=&p=`` (`s3cache free`, signed the same way by the operator's command): drop every block
of the objects under prefix p of bucket b (this worker's names for them) from this worker and the placement map;
answers what went as JSON.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

from cache.blocks.prefix import free_prefix
from cache.cluster.peers import (
    EXPIRES_HEADER,
    FREE_PATH,
    META_BYTES_HEADER,
    META_PATH,
    PEER_PATH,
    SIGNATURE_HEADER,
    SMALL_OBJECT_BYTES,
    verify_request,
)
from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta
from proxy.context import Context
from proxy.errors import error_response
from proxy.http import Receive, Response, Scope, Send, send_response

log = logging.getLogger("s3cache.peer")
_CHUNK_BYTES = 1 << 20
PATHS = frozenset({PEER_PATH, META_PATH, FREE_PATH})


def _query(ctx: Context, scope: Scope) -> dict[str, str]:
    """The request's query, once its signature (cluster secret) and the block size are found to agree."""
    cluster = ctx.settings.cluster
    secrets = [s.get_secret_value() for s in (cluster.secret, cluster.previous_secret) if s is not None]
    headers = dict(scope["headers"])
    expires = headers.get(EXPIRES_HEADER.encode(), b"").decode("latin-1")
    signature = headers.get(SIGNATURE_HEADER.encode(), b"").decode("latin-1")
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if not verify_request(secrets, scope["method"], scope["path"], pairs, expires, signature):
        raise S3Error("AccessDenied", "Peer requests must be signed with the cluster secret, for this request, "
                      "unexpired")
    q = dict(pairs)
    block_size = q.get("bs", "0")
    if not block_size.isdigit():
        raise S3Error("InvalidRequest", "Malformed peer request")
    if int(block_size) and int(block_size) != ctx.settings.cache.block_size_bytes:
        raise S3Error("InvalidRequest", f"Block size mismatch: the peer cuts {block_size}-byte blocks, this worker "
                      f"{ctx.settings.cache.block_size_bytes}")
    return q


async def _block(ctx: Context, q: dict[str, str]) -> Response:
    reader = ctx.stack.reader if ctx.stack is not None else None
    if reader is None or reader.cluster is None:
        raise S3Error("InvalidRequest", "This worker is not part of a cluster")
    try:
        # A block is named by the object version's key, ETag and size: all a peer needs of the metadata.
        meta = ObjectMeta(key=q["k"], size=int(q["s"]), etag=q["e"], last_modified=0.0)
        bucket, index, lo, hi = q["b"], int(q["i"]), int(q["lo"]), int(q["hi"])
    except (KeyError, ValueError):
        raise S3Error("InvalidRequest", "Malformed peer block request") from None
    if lo == hi:
        reader.warm(bucket, meta, index)
        return Response(200, {"content-length": "0"})
    stream = reader.local_block(bucket, meta, index, lo, hi, _CHUNK_BYTES)
    return Response(200, {"content-length": str(hi - lo)}, stream, hi - lo)


async def _meta(ctx: Context, q: dict[str, str]) -> Response:
    cached = ctx.stack.cached if ctx.stack is not None else None
    if cached is None:
        raise S3Error("InvalidRequest", "This worker caches no origin")
    try:
        bucket, key, index, whole = q["b"], q["k"], int(q["i"]), q.get("w") == "1"
    except (KeyError, ValueError):
        raise S3Error("InvalidRequest", "Malformed peer meta request") from None
    meta = await cached.open_here(bucket, key, index, whole)
    body = meta.to_json().encode()
    headers = {"content-type": "application/json"}
    if q.get("d") == "1" and whole and index == 0 and 0 < meta.size <= min(SMALL_OBJECT_BYTES, cached.reader.block_size):
        # the bytes the asker reads next come along: one peer hop for a cold small object, not two
        headers[META_BYTES_HEADER] = str(len(body))
        body += await cached.reader.read_here(bucket, meta, meta.size)
    headers["content-length"] = str(len(body))
    return Response(200, headers, body, len(body))


async def _free(ctx: Context, q: dict[str, str]) -> Response:
    stack = ctx.stack
    if "b" not in q or "p" not in q:
        raise S3Error("InvalidRequest", "Malformed free request")
    found = {"objects": 0, "blocks": 0, "bytes": 0}
    namespace = ctx.namespace
    if stack is not None and stack.reader is not None and stack.cached is not None and namespace is not None \
            and namespace.mount(q["b"]).cached:
        bucket, prefix = namespace.origin_name(q["b"], q["p"])
        found = vars(await free_prefix(stack.reader, stack.cached, bucket, prefix))
        log.info("freed %d blocks (%d bytes) of %d objects under %s/%s", found["blocks"], found["bytes"],
                 found["objects"], bucket, prefix)
    body = json.dumps(found).encode()
    return Response(200, {"content-type": "application/json", "content-length": str(len(body))}, body, len(body))


HANDLERS = {PEER_PATH: _block, META_PATH: _meta, FREE_PATH: _free}


async def serve_peer(ctx: Context, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await HANDLERS[scope["path"]](ctx, _query(ctx, scope))
    except S3Error as error:
        if error.code not in ("NoSuchKey", "NoSuchBucket"):
            log.warning("peer request refused: %s", error)
        response = error_response(error, scope["path"], "peer", head=False)
    await send_response(send, response, "peer", head_only=False)
