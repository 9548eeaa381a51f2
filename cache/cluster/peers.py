"""Reading a block range from another worker over pooled keep-alive connections.

The peer protocol is two requests, each signed with the cluster secret (``sign_request``: an HMAC-SHA256 over the
method, the path, the whole sorted query and an expiry a few seconds ahead, sent in ``x-s3cache-signature`` and
``x-s3cache-expires``; the secret itself never crosses the wire, and a captured request admits nothing but itself,
until it expires):
``GET <peer>/_s3cache/peer/block?b=&k=&e=&s=&i=&lo=&hi=``: the peer serves bytes [lo, hi) of block i of the
object version (bucket b, key k, ETag e, size s) from its own cache, filling it from the origin if it must;
``GET <peer>/_s3cache/peer/meta?b=&k=&i=&w=&d=1``: a cold open, the peer (the owner of block i) opens the object with
one origin request for that block and answers the metadata as JSON; for a whole read (w=1) of an object of at most
SMALL_OBJECT_BYTES the object's bytes follow the JSON (``x-s3cache-meta-bytes`` says where it ends), so a cold small
object costs one peer hop, not two (d=1: the asking worker takes them; a worker that does not send it gets JSON
alone). A peer never forwards either again.
aiohttp's client is used for this hop: measured here it costs several times less per
request than httpx's (benchmarks/peer_hop.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp

from cache.s3.errors import CODES, S3Error
from cache.s3.model import ObjectMeta
from cache.s3.xml import parse_xml

SIGNATURE_HEADER = "x-s3cache-signature"
EXPIRES_HEADER = "x-s3cache-expires"
_SIGNATURE_VERSION = "s3cache-peer-1"
_MAX_EXPIRY_DIGITS = 12
PEER_PATH = "/_s3cache/peer/block"
META_PATH = "/_s3cache/peer/meta"  # a cold open: the owner of block i opens the object and answers its metadata
FREE_PATH = "/_s3cache/peer/free"  # `s3cache free`: drop a prefix's blocks here and from the placement map
_CHUNK_BYTES = 1 << 20
META_BYTES_HEADER = "x-s3cache-meta-bytes"
SMALL_OBJECT_BYTES = 256 << 10  # a cold open's answer carries the bytes of an object this small (one block)


def _signature(secret: str, method: str, path: str, query: Iterable[tuple[str, str]], expires: str) -> str:
    # JSON of the sorted pairs: no key or value can shift a field boundary, and every parameter is covered
    message = json.dumps([_SIGNATURE_VERSION, method.upper(), path, sorted(query), expires]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_request(secret: str, method: str, path: str, query: Mapping[str, object], ttl_s: float,
                 now: float | None = None) -> dict[str, str]:
    """The headers that authenticate this one peer request (method, path, this exact query) for ttl_s seconds."""
    expires = str(int((time.time() if now is None else now) + ttl_s) + 1)  # +1: never shorter than ttl_s
    pairs = [(str(name), str(value)) for name, value in query.items()]
    return {EXPIRES_HEADER: expires, SIGNATURE_HEADER: _signature(secret, method, path, pairs, expires)}


def verify_request(secrets: Iterable[str], method: str, path: str, query: Iterable[tuple[str, str]], expires: str,
                   signature: str, now: float | None = None) -> bool:
    """True if the signature was made with one of secrets (the current one, or the previous during a rotation) for
    exactly this method, path and query, and has not expired. Compared in constant time."""
    if not (expires.isascii() and expires.isdigit() and len(expires) <= _MAX_EXPIRY_DIGITS):
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    pairs = list(query)
    offered = signature.encode("latin-1", "replace")
    matched = False
    for secret in secrets:
        if secret:  # every secret is tried: how long this takes says nothing of which one matched
            matched |= hmac.compare_digest(offered, _signature(secret, method, path, pairs, expires).encode())
    return matched


class PeerUnavailable(Exception):
    """The peer could not be asked or broke off: try the next candidate."""


_PREVIOUS_REMEMBERED_S = 30.0  # a peer found to know only the previous secret is signed for with it this long


class Peers:
    """The peer client. Requests are signed with the current secret; during a rotation (previous_secret set), a
    peer that refuses that (403: it does not know the new secret yet) is asked again signed with the previous one,
    and for a while first with it, so workers rotated and not yet rotated keep reading each other's blocks."""

    def __init__(self, secret: str, timeout_s: float = 10.0, max_connections: int = 256, block_size: int = 0,
                 signature_ttl_s: float = 30.0, previous_secret: str | None = None,
                 ca_file: str | None = None) -> None:
        self._secret = secret  # signs each request; never sent, never in a repr
        self._previous = previous_secret or None
        self._on_previous: dict[str, float] = {}  # peer URL -> until when it is signed for with the previous secret
        self.signature_ttl_s = signature_ttl_s
        self.block_size = block_size  # sent along: a peer cutting objects otherwise refuses rather than misread
        # sock_connect, not connect: aiohttp's connect timeout also runs while a request waits for a pooled
        # connection, so a burst of reads to a busy peer would time out without the peer being slow at all.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(2.0, timeout_s), sock_read=timeout_s)
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        # https peers: their certificates checked against this CA bundle (None: the system's)
        self._tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30, ssl=self._tls)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _secrets(self, url: str) -> list[str]:
        if self._previous is None:
            return [self._secret]
        if self._on_previous.get(url, 0.0) > time.monotonic():
            return [self._previous, self._secret]
        return [self._secret, self._previous]

    async def _get(self, url: str, path: str, query: Mapping[str, object]) -> aiohttp.ClientResponse:
        """The peer's response to a GET of path?query signed for it (the caller releases it)."""
        target = f"{url}{path}?{urlencode(query)}"
        secrets = self._secrets(url)
        for attempt, secret in enumerate(secrets):
            resp = await self._client().get(target, headers=sign_request(secret, "GET", path, query,
                                                                         self.signature_ttl_s))
            if resp.status == 403 and attempt + 1 < len(secrets):  # signed with a secret this peer does not know
                resp.release()
                continue
            if resp.status != 403 and self._previous is not None:
                if secret == self._previous:
                    self._on_previous[url] = time.monotonic() + _PREVIOUS_REMEMBERED_S
                else:
                    self._on_previous.pop(url, None)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    async def read_block(
        self, url: str, bucket: str, meta: ObjectMeta, index: int, lo: int, hi: int
    ) -> AsyncIterator[bytes]:
        """Bytes [lo, hi) of block index, read from the peer at url. A peer that has not sent them all within
        timeout_s of waiting for it (its answer and its bytes; not the time this worker's own client takes) is
        PeerUnavailable, whether it stopped answering or answers slowly: the caller goes on from the bytes it got."""
        query = {"b": bucket, "k": meta.key, "e": meta.etag, "s": meta.size, "i": index, "lo": lo, "hi": hi,
                 "bs": self.block_size}
        loop = asyncio.get_running_loop()
        left = self.timeout_s
        try:
            began = loop.time()
            async with asyncio.timeout(left):
                resp = await self._get(url, PEER_PATH, query)
            left -= loop.time() - began
            async with resp:
                if resp.status != 200:
                    body = await resp.read()
                    if resp.status in (404, 412):  # the object itself is gone or changed: not the peer's fault
                        code = "PreconditionFailed" if resp.status == 412 else "NoSuchKey"
                        raise S3Error(code, extra={"Key": meta.key})
                    raise PeerUnavailable(f"{url} answered {resp.status}: {body[:200]!r}")
                # each piece as it came off the socket (iter_chunked would join them into a copy first), the whole
                # read bounded by the peer timeout
                chunks = resp.content.iter_chunks()
                while True:
                    began = loop.time()
                    async with asyncio.timeout(left):
                        piece = await anext(chunks, None)
                    left -= loop.time() - began
                    if piece is None:
                        return
                    chunk = piece[0]
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise PeerUnavailable(f"{url}: {type(exc).__name__}: {str(exc) or f'not done in {self.timeout_s}s'}") from None

    async def open_meta(self, url: str, bucket: str, key: str, index: int, whole: bool) -> tuple[ObjectMeta, bytes | None]:
        """Ask the owner of block index of bucket/key to open it cold: it fetches that block from the origin (or
        knows the object already) and answers the metadata, with the object's bytes when it is small and read whole
        (else None: the bytes are read from it next, as any block's)."""
        query = {"b": bucket, "k": key, "i": index, "w": int(whole), "bs": self.block_size, "d": 1}
        try:
            async with await self._get(url, META_PATH, query) as resp:
                body = await resp.read()
                status = resp.status
                split = resp.headers.get(META_BYTES_HEADER, "")
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise PeerUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if status == 200:
            end = int(split) if split.isdigit() and int(split) <= len(body) else len(body)
            try:
                meta = ObjectMeta.from_json(body[:end])
            except (ValueError, TypeError) as exc:
                raise PeerUnavailable(f"{url} answered unreadable metadata: {exc}") from None
            data = body[end:] if split else None
            if data is not None and len(data) != meta.size:
                raise PeerUnavailable(f"{url} sent {len(data)} bytes of a {meta.size}-byte object")
            return meta, data
        code = _error_code(body)
        if status < 500 and code in CODES and code != "AccessDenied":  # the object's own answer (NoSuchKey...)
            raise S3Error(code, extra={"Key": key})
        raise PeerUnavailable(f"{url} answered {status}: {body[:200]!r}")


def _error_code(body: bytes) -> str:
    try:
        return parse_xml(body).findtext("Code") or ""
    except (ElementTree.ParseError, ValueError):
        return ""
