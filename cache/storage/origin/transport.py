"""HTTP to an S3 origin: one pooled client per origin, behind one small interface.

cache.storage.origin.store speaks S3 (signing, errors, retries, XML); this module only carries requests and bytes, so
the HTTP library is a setting (``origin.http_client``) rather than a rewrite:

- ``httpx``: httpx.AsyncClient over httpcore's pool;
- ``aiohttp``: aiohttp.ClientSession over its TCPConnector. Per small request it costs a fraction of
  httpx's CPU (benchmarks/cold_warm.py measures both side by side), which is what bounds cold reads.

Either way the request line carries exactly the path that was signed (no "." or ".." folding), nothing
is decompressed, redirects are not followed, and a connection failure, timeout or broken body is raised
as OriginUnreachable.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass

import aiohttp
import httpx
from yarl import URL

Body = bytes | AsyncIterator[bytes] | None


class OriginUnreachable(Exception):
    """The request or its response body did not get through (refused, reset, timed out, cut short)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.kind = type(cause).__name__  # ConnectError, ServerDisconnectedError, TimeoutError, ...


class Response(Protocol):
    status: int
    headers: Mapping[str, str]  # names in lower case

    async def read(self) -> bytes: ...

    def raw(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Transport(Protocol):
    async def send(self, method: str, url: str, target: str, headers: Mapping[str, str], body: Body) -> Response:
        """Send one request (url = scheme://host + target); the response body is left to stream."""
        ...

    async def aclose(self) -> None: ...


def _lower(items: object) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:  # type: ignore[attr-defined]
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


# ---- httpx ---------------------------------------------------------------------------------------------


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers: Mapping[str, str] = _lower(response.headers.multi_items())

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.TransportError as exc:
            raise OriginUnreachable(exc) from None

    async def raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            raise OriginUnreachable(exc) from None

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def pooled(cls, connect_timeout_s: float, read_timeout_s: float, max_connections: int,
               tls: ssl.SSLContext) -> HttpxTransport:
        return cls(httpx.AsyncClient(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=tls,
        ))

    async def send(self, method: str, url: str, target: str, headers: Mapping[str, str], body: Body) -> Response:
        # httpx would drop "." and ".." segments from the URL (a key "a/../b" would become "b"): the target
        # extension puts the signed path on the request line as it is.
        request = self.client.build_request(method, url, headers=headers, content=body,
                                            extensions={"target": target.encode("ascii")})
        try:
            return _HttpxResponse(await self.client.send(request, stream=True))
        except httpx.TransportError as exc:
            raise OriginUnreachable(exc) from None

    async def aclose(self) -> None:
        await self.client.aclose()


# ---- aiohttp -------------------------------------------------------------------------------------------

_AIOHTTP_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
# What a response may buffer before its socket is paused (aiohttp's default: 64 KiB): a fill takes bytes as fast as
# they come, so a larger buffer means fewer pause/resume round trips through the event loop, not more memory held.
_READ_BUFFER_BYTES = 1 << 20
# What aiohttp would add on its own: an Accept-Encoding would invite compressed bodies (never decoded here),
# and a Content-Type on a bodied PUT would become the stored object's type.
_SKIP_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class _AiohttpResponse:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = _lower(response.headers.items())

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except _AIOHTTP_ERRORS as exc:
            raise OriginUnreachable(exc) from None
        finally:
            self._response.release()

    async def raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk, _ in self._response.content.iter_chunks():  # as received: iter_any joins (a copy)
                yield chunk
        except _AIOHTTP_ERRORS as exc:
            raise OriginUnreachable(exc) from None

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # a body left unread: the connection cannot be reused


class _Source:
    """A request body that remembers why it failed: aiohttp reports any body error as a connection error."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self.body = body
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.body:
                yield chunk
        except Exception as exc:
            self.error = exc
            raise


class AiohttpTransport:
    def __init__(self, connect_timeout_s: float, read_timeout_s: float, max_connections: int,
                 tls: ssl.SSLContext) -> None:
        self._settings = (connect_timeout_s, read_timeout_s, max_connections)
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _open(self) -> aiohttp.ClientSession:  # inside the event loop, on first use
        connect_timeout_s, read_timeout_s, max_connections = self._settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections, ssl=self._tls),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s),
            auto_decompress=False, skip_auto_headers=_SKIP_AUTO, cookie_jar=aiohttp.DummyCookieJar(),
            read_bufsize=_READ_BUFFER_BYTES)
        # Not trust_env: it reads ~/.netrc and the proxy variables again on every request (a tenth of a cold
        # read's CPU); the proxy is looked up once per origin instead (_proxy_for).
        return self._session

    def _proxy_for(self, url: str) -> str | None:
        """HTTPS_PROXY / HTTP_PROXY unless NO_PROXY exempts the host, as httpx and the AWS SDKs do; once per origin."""
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._proxies:
            bypass = parts.hostname is None or proxy_bypass(parts.netloc)
            self._proxies[origin] = None if bypass else getproxies_environment().get(parts.scheme)
        return self._proxies[origin]

    async def send(self, method: str, url: str, target: str, headers: Mapping[str, str], body: Body) -> Response:
        session = self._session or self._open()
        source = _Source(body) if body is not None and not isinstance(body, bytes) else None
        try:
            response = await session.request(method, URL(url, encoded=True), headers=dict(headers),
                                             data=source.chunks() if source else body, allow_redirects=False,
                                             proxy=self._proxy_for(url))
        except _AIOHTTP_ERRORS as exc:
            if source is not None and source.error is not None:
                raise source.error from None  # the client's body failed (IncompleteBody, BadDigest...), not the origin
            raise OriginUnreachable(exc) from None
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


CLIENTS = ("aiohttp", "httpx")


def tls_context(ca_bundle: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Verification of an https origin: the given CA bundle, else the system's store."""
    return ssl.create_default_context(cafile=os.fspath(ca_bundle) if ca_bundle else None)


def make_transport(name: str, *, connect_timeout_s: float, read_timeout_s: float, max_connections: int,
                   tls: ssl.SSLContext | None = None) -> Transport:
    """The one place an origin client is built (tls: how an https origin is verified; default the system's
    store)."""
    tls = tls or tls_context(None)
    if name == "httpx":
        return HttpxTransport.pooled(connect_timeout_s, read_timeout_s, max_connections, tls)
    if name == "aiohttp":
        return AiohttpTransport(connect_timeout_s, read_timeout_s, max_connections, tls)
    raise ValueError(f"unknown origin HTTP client {name!r} (one of {', '.join(CLIENTS)})")
