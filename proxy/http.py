"""The request and response shapes of the S3 front, straight on ASGI.

S3 routing depends on method, query keywords and headers, not on path templates, and the GET/HEAD hot
path is dominated by per-request framework cost (measured: docs/architecture.md), so the S3 front reads the ASGI
scope itself: one small object per request, nothing parsed that no handler asks for.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from cache.s3.errors import S3Error
from proxy.chunksig import ChunkChain

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_SINGLE_PUT_BYTES = 5 << 30
META_PREFIX = "x-amz-meta-"
# C1 control characters (U+0080..U+009F): S3 answers a key holding one 400 InvalidURI, as it does bad UTF-8.
_C1_CONTROLS = re.compile("[\x80-\x9f]")
# Request ids: a random per-process prefix and a counter (os.urandom per request costs a syscall).
_ID_PREFIX = secrets.token_hex(4).upper()
_ids = itertools.count(1)
log = logging.getLogger("s3cache")


class StreamAborted(Exception):
    """A response body that failed after its status and headers went out (the object changed under the read, the
    origin or a peer broke off): all left is to cut the connection, so the client sees a short body, never a whole
    wrong one. Raised out of the ASGI app so the server cuts it; send_response has logged it, one warning line."""

    def __init__(self, error: S3Error) -> None:
        super().__init__(str(error))
        self.error = error


class QuietAborts(logging.Filter):
    """Drops the server's "Exception in ASGI application" record (ERROR, with a traceback) of a StreamAborted: an
    expected event, logged once already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


QUIET_ABORTS = QuietAborts()


def user_metadata_value(raw: bytes) -> str:
    """An ``x-amz-meta-*`` value as the text its sender meant: UTF-8, which SDKs send (botocore sends a str
    value's UTF-8 bytes), else each byte as the ISO-8859-1 character HTTP says it is."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def virtual_bucket(host: str | None, domains: tuple[str, ...]) -> str | None:
    """The bucket a Host names in virtual-hosted style, ``<bucket>.<domain>[:port]`` for one of domains (compared
    without case or a final dot); None for path style: a Host that is a domain itself, an address, any other."""
    if not host or host.startswith("["):  # no Host (HTTP/1.0), or an IPv6 address
        return None
    name = host.partition(":")[0].lower().rstrip(".")
    for domain in domains:
        if name.endswith(domain) and len(name) > len(domain) + 1 and name[-len(domain) - 1] == ".":
            return name[:-len(domain) - 1]
    return None


class Request:
    """One S3 request: addressing, query, headers, the caller, and the body as a stream."""

    __slots__ = ("body_requested", "bucket", "chain", "groups", "headers", "key", "method", "operation", "query",
                 "receive", "request_id", "user")

    def __init__(self, scope: Scope, receive: Receive, domains: tuple[str, ...] = ()) -> None:
        """domains: server.domains, whose sub-domains name a bucket (virtual-hosted-style addressing)."""
        self.method: str = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        try:
            path = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise S3Error("InvalidURI", "Couldn't parse the specified URI.") from None
        if _C1_CONTROLS.search(path):  # valid UTF-8 that S3 cannot parse either: refused before any lookup
            raise S3Error("InvalidURI", "Couldn't parse the specified URI.")
        path = path[1:] if path.startswith("/") else path
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            k = name.decode("latin-1")  # ASGI servers hand header names in lower case
            v = value.decode("latin-1")
            if k.startswith(META_PREFIX) and not v.isascii():
                v = user_metadata_value(value)
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        self.headers = headers
        hosted = virtual_bucket(headers.get("host"), domains) if domains else None
        if hosted is not None:  # bucket.domain/key: the whole path is the key
            bucket, key = hosted, path
        else:
            bucket, _, key = path.partition("/")
            if not bucket and key:  # "//bucket/key": an empty bucket name, never the service level
                raise S3Error("InvalidBucketName", extra={"BucketName": bucket})
        self.bucket: str = bucket
        self.key: str = key
        qs = scope.get("query_string", b"")
        self.query: dict[str, str] = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
        self.receive = receive
        self.user: str | None = None
        self.chain: ChunkChain | None = None  # set when a signed aws-chunked body's signatures are to be checked
        self.groups: tuple[str, ...] = ()  # the user's groups, where authentication knows them (an OIDC token's)
        self.request_id: str = f"{_ID_PREFIX}{next(_ids):08X}"
        self.operation: str = "-"
        self.body_requested = False  # set once a handler starts reading: the server then sends 100 Continue

    @property
    def level(self) -> str:
        if not self.bucket:
            return "service"
        return "object" if self.key else "bucket"

    async def body(self) -> AsyncIterator[bytes]:
        """The request body as it arrives; a client that hangs up mid-body gets IncompleteBody."""
        self.body_requested = True
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody")
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | AsyncIterator[bytes] = b""
    size: int = 0  # bytes the body carries, for the access log

    @classmethod
    def xml(cls, document: bytes, status: int = 200) -> Response:
        return cls(status, {"content-type": "application/xml", "content-length": str(len(document))}, document,
                   len(document))


async def send_response(send: Send, response: Response, request_id: str, head_only: bool, resource: str = "") -> None:
    headers = [(b"x-amz-request-id", request_id.encode()), (b"x-amz-id-2", request_id.encode()),
               (b"server", b"s3cache")]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items())
    body = response.body
    # A whole body may be a bytearray: dirfs.pread hands its buffer over uncopied for reads of 64 KiB and more.
    if isinstance(body, (bytes, bytearray)) and "content-length" not in response.headers and not head_only:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if head_only:
        if not isinstance(body, (bytes, bytearray)):
            await body.aclose()  # type: ignore[attr-defined]
        await send({"type": "http.response.body", "body": b""})
    elif isinstance(body, (bytes, bytearray)):
        await send({"type": "http.response.body", "body": body})
    else:
        try:
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except S3Error as error:
            log.warning("request %s: the response to %s was cut after its headers: %s", request_id,
                        resource or "-", error)
            raise StreamAborted(error) from None
        finally:
            await body.aclose()  # type: ignore[attr-defined]
        await send({"type": "http.response.body", "body": b""})
