"""cache.storage.origin.reads through S3Store against an httpx.MockTransport: a body that breaks off is asked for
again from the byte it reached, pinned to its version, within the retry budget; a version replaced meanwhile is
PreconditionFailed, a budget spent ServiceUnavailable; never a body spliced from two versions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from cache.s3.errors import S3Error
from cache.storage.origin.store import S3Store
from tests.unit.cache.storage.test_origin_store import Recorder, make_store, xml_error

DATA = bytes(range(256)) * 8  # 2 KiB, every offset recognisable
ETAG = '"0123456789abcdef0123456789abcdef"'


class Breaking(httpx.AsyncByteStream):
    """A body that sends its first `before` bytes, then fails as the connection would (or just ends: `short`)."""

    def __init__(self, data: bytes, before: int, short: bool = False) -> None:
        self.data, self.before, self.short = data, before, short

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for offset in range(0, self.before, 100):
            yield self.data[offset:min(self.before, offset + 100)]
        if not self.short:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def ranged(break_after: Callable[[int], int | None], short: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    """Answers Range GETs of DATA; the nth answer (0-based) breaks after break_after(n) bytes (None: whole)."""
    seen = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        first, last = (int(v) for v in request.headers["range"].removeprefix("bytes=").split("-"))
        body = DATA[first:last + 1]
        cut = break_after(seen["n"])
        seen["n"] += 1
        stream = Breaking(body, len(body)) if cut is None else Breaking(body, min(cut, len(body)), short)
        return httpx.Response(206, stream=stream, headers={
            "etag": ETAG, "content-range": f"bytes {first}-{last}/{len(DATA)}", "content-length": str(len(body))})
    return answer


def read(store: S3Store, start: int, end: int) -> bytes:
    async def go() -> bytes:
        try:
            return b"".join([chunk async for chunk in store.read_range("b", "k", ETAG.strip('"'), start, end)])
        finally:
            await store.aclose()
    return asyncio.run(go())


@pytest.mark.parametrize("short", [False, True], ids=["reset", "short"])
def test_a_broken_body_is_resumed_from_the_byte_reached_pinned_by_if_match(short: bool) -> None:
    recorder = Recorder(ranged(lambda n: 300 if n == 0 else None, short))
    assert read(make_store(recorder), 100, 1600) == DATA[100:1600]
    assert [r.headers["range"] for r in recorder.requests] == ["bytes=100-1599", "bytes=400-1599"]
    assert all(r.headers["if-match"] == ETAG for r in recorder.requests)


def test_each_resumption_goes_on_from_where_the_last_one_broke() -> None:
    recorder = Recorder(ranged(lambda n: 200 if n < 3 else None))
    assert read(make_store(recorder, retries=3), 0, 2048) == DATA
    assert [r.headers["range"] for r in recorder.requests] == \
        ["bytes=0-2047", "bytes=200-2047", "bytes=400-2047", "bytes=600-2047"]


def test_a_body_that_keeps_breaking_is_service_unavailable_once_the_budget_is_spent() -> None:
    recorder = Recorder(ranged(lambda n: 100))
    with pytest.raises(S3Error) as caught:
        read(make_store(recorder, retries=2), 0, 2048)
    assert (caught.value.code, caught.value.status) == ("ServiceUnavailable", 503)
    assert "broke off a read" in caught.value.message
    assert len(recorder.requests) == 3  # the read and its two resumptions


def test_a_version_replaced_before_the_resumption_is_precondition_failed() -> None:
    first = ranged(lambda n: 300)
    changed = xml_error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
    recorder = Recorder(lambda request: first(request) if request.headers["range"] == "bytes=0-2047"
                        else changed(request))
    received = bytearray()

    async def go() -> None:
        store = make_store(recorder)
        try:
            async for chunk in store.read_range("b", "k", ETAG.strip('"'), 0, 2048):
                received.extend(chunk)
        finally:
            await store.aclose()

    with pytest.raises(S3Error) as caught:
        asyncio.run(go())
    assert (caught.value.code, caught.value.status) == ("PreconditionFailed", 412)
    assert bytes(received) == DATA[:300]  # what came was the pinned version's own bytes, then nothing


def test_a_cold_whole_read_is_resumed_with_a_range_pinned_to_the_version_it_began() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "range" not in request.headers:  # the cold read asks for the object whole, then breaks
            return httpx.Response(200, stream=Breaking(DATA, 500), headers={
                "etag": ETAG, "content-length": str(len(DATA)), "last-modified": "Wed, 01 Jan 2025 00:00:00 GMT"})
        return ranged(lambda n: None)(request)

    recorder = Recorder(answer)

    async def go() -> bytes:
        store = make_store(recorder)
        try:
            meta, body = await store.open_range("b", "k", 0, 4096, whole=True)
            assert meta.size == len(DATA)
            return b"".join([chunk async for chunk in body])
        finally:
            await store.aclose()

    assert asyncio.run(go()) == DATA  # cut at the object's end, not the 4096 asked for
    assert [r.headers.get("range") for r in recorder.requests] == [None, "bytes=500-2047"]
    assert recorder.requests[1].headers["if-match"] == ETAG


class Watched(httpx.AsyncByteStream):
    """A body that records whether its response was given back (closed), read or not."""

    def __init__(self, data: bytes) -> None:
        self.data, self.closed = data, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("whole", [False, True], ids=["ranged", "whole"])
def test_a_cold_open_never_read_gives_its_connection_back(whole: bool) -> None:
    """A cold open whose block proves cached already is closed unread: its answer must still be released, or each
    such open would hold one of the origin pool's connections for good."""
    stream = Watched(DATA[:1024])
    headers = {"etag": ETAG, "content-length": "1024"}
    if not whole:
        headers["content-range"] = f"bytes 0-1023/{len(DATA)}"
    store = make_store(Recorder(lambda request: httpx.Response(200 if whole else 206, stream=stream,
                                                                headers=headers)))

    async def go() -> None:
        try:
            meta, body = await store.open_range("b", "k", 0, 1024, whole)
            assert meta.etag == ETAG.strip('"')
            assert not stream.closed
            await body.aclose()  # type: ignore[attr-defined]
        finally:
            await store.aclose()

    asyncio.run(go())
    assert stream.closed
