"""Reading a block range from another worker over pooled keep-alive connections.

The peer protocol is two requests, each carrying the cluster secret in ``x-s3cache-secret``:
``GET <peer>/_s3cache/peer/block?b=&k=&e=&s=&i=&lo=&hi=``: the peer serves bytes [lo, hi) of block i of the
object version (bucket b, key k, ETag e, size s) from its own cache, filling it from the origin if it must;
``GET <peer>/_s3cache/peer/meta?b=&k=&i=&w=``: a cold open, the peer (the owner of block i) opens the object with
one origin request for that block and answers the metadata as JSON. A peer never forwards either again.
aiohttp's client is used for this hop: measured here it costs several times less per
request than httpx's (benchmarks/peer_hop.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode
from xml.etree import ElementTree

import aiohttp

from cache.s3.errors import CODES, S3Error
from cache.s3.model import ObjectMeta
from cache.s3.xml import parse_xml

SECRET_HEADER = "x-s3cache-secret"
PEER_PATH = "/_s3cache/peer/block"
META_PATH = "/_s3cache/peer/meta"  # a cold open: the owner of block i opens the object and answers its metadata
_CHUNK_BYTES = 1 << 20


class PeerUnavailable(Exception):
    """The peer could not be asked or broke off: try the next candidate."""


class Peers:
    def __init__(self, secret: str, timeout_s: float = 10.0, max_connections: int = 256, block_size: int = 0) -> None:
        self.secret = secret
        self.block_size = block_size  # sent along: a peer cutting objects otherwise refuses rather than misread
        # sock_connect, not connect: aiohttp's connect timeout also runs while a request waits for a pooled
        # connection, so a burst of reads to a busy peer would time out without the peer being slow at all.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(2.0, timeout_s), sock_read=timeout_s)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def read_block(
        self, url: str, bucket: str, meta: ObjectMeta, index: int, lo: int, hi: int
    ) -> AsyncIterator[bytes]:
        query = urlencode({"b": bucket, "k": meta.key, "e": meta.etag, "s": meta.size, "i": index, "lo": lo, "hi": hi,
                           "bs": self.block_size})
        try:
            async with self._client().get(f"{url}{PEER_PATH}?{query}", headers={SECRET_HEADER: self.secret}) as resp:
                if resp.status != 200:
                    body = await resp.read()
                    if resp.status in (404, 412):  # the object itself is gone or changed: not the peer's fault
                        code = "PreconditionFailed" if resp.status == 412 else "NoSuchKey"
                        raise S3Error(code, extra={"Key": meta.key})
                    raise PeerUnavailable(f"{url} answered {resp.status}: {body[:200]!r}")
                async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise PeerUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None

    async def open_meta(self, url: str, bucket: str, key: str, index: int, whole: bool) -> ObjectMeta:
        """Ask the owner of block index of bucket/key to open it cold: it fetches that block from the origin (or
        knows the object already) and answers the metadata; the bytes are read from it next, as any block's."""
        query = urlencode({"b": bucket, "k": key, "i": index, "w": int(whole), "bs": self.block_size})
        try:
            async with self._client().get(f"{url}{META_PATH}?{query}", headers={SECRET_HEADER: self.secret}) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise PeerUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None
        if status == 200:
            try:
                return ObjectMeta.from_json(body)
            except (ValueError, TypeError) as exc:
                raise PeerUnavailable(f"{url} answered unreadable metadata: {exc}") from None
        code = _error_code(body)
        if status < 500 and code in CODES and code != "AccessDenied":  # the object's own answer (NoSuchKey...)
            raise S3Error(code, extra={"Key": key})
        raise PeerUnavailable(f"{url} answered {status}: {body[:200]!r}")


def _error_code(body: bytes) -> str:
    try:
        return parse_xml(body).findtext("Code") or ""
    except (ElementTree.ParseError, ValueError):
        return ""
