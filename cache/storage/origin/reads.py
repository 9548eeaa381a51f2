"""Object bytes from an S3 origin: a body that breaks off is asked for again from the byte it reached.

A block's GET is idempotent once it names its version: when the origin resets the connection, closes it short
of the Content-Length or stalls past the read timeout, the rest of the range is requested again (``Range`` from
the offset reached, ``If-Match`` on the version's ETag), after the store's backoff, up to the store's retry
budget. A version replaced meanwhile is ``PreconditionFailed`` rather than a body spliced from two versions;
a budget spent is ``ServiceUnavailable`` naming the origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from cache.s3.errors import S3Error
from cache.storage.origin.transport import OriginUnreachable

if TYPE_CHECKING:
    from cache.storage.origin.store import S3Store, Sent


class Opened:
    """A body whose answer has arrived, not read yet: iterating it reads the bytes; ``aclose()`` gives the connection
    back whether it was read or not. (An async generator never started runs no ``finally`` on ``aclose()``: a cold
    open whose block turned out cached already would keep its origin connection for good, and once the pool's
    ``origin.max_connections`` were held so, every origin request would wait for one.)"""

    def __init__(self, body: AsyncIterator[bytes], response: Sent) -> None:
        self._body = body
        self._response = response

    def __aiter__(self) -> Opened:
        return self

    async def __anext__(self) -> bytes:
        return await self._body.__anext__()

    async def aclose(self) -> None:
        try:
            await self._body.aclose()  # type: ignore[attr-defined]
        finally:
            await self._response.response.aclose()


async def resumed(
    store: S3Store, response: Sent, bucket: str, key: str, etag: str, start: int, end: int,
) -> AsyncIterator[bytes]:
    """Bytes [start, end) of version etag, the first of them from response (a GET already answered, whose
    body starts at start). An origin that sends more than was asked for (a range ignored) is cut at end."""
    position = start
    resumes = 0
    while True:
        broke = "ShortBody"  # the body ended cleanly before end: the bytes still owed are asked for again
        try:
            async for chunk in response.response.raw():
                piece = chunk[:end - position]
                position += len(piece)
                yield piece
                if position >= end:
                    return
            if position >= end:
                return
        except OriginUnreachable as exc:
            broke = exc.kind
        finally:
            await response.response.aclose()
        where = f"GET {bucket}/{key} broke off at byte {position} of [{start}, {end})"
        if resumes >= store.retries or not etag:
            raise S3Error("ServiceUnavailable", f"The origin {store.endpoint} broke off a read: {broke}")
        resumes += 1
        await store.backoff(resumes, f"{where}: {broke}")
        response = await store.request("GET", bucket, key, headers={
            "range": f"bytes={position}-{end - 1}", "if-match": f'"{etag}"'}, stream=True)
