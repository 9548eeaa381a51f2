"""cache.blocks.reader.BlockReader over a real BlockStore and a fake origin: exact bytes, single flight, read-ahead,
errors handed to every reader, corrupt blocks refetched, block identity per object version."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any, cast

import pytest

from cache.blocks.reader import BlockReader, block_id
from cache.blocks.store import BlockStore
from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta

BS = 4096  # block size of these tests
BUCKET, KEY = "bkt", "dir/object.bin"


class Origin:
    """An in-memory origin: fetch() yields the requested bytes in pieces, recording every call."""

    def __init__(self, delay_s: float = 0.0, piece: int = 1000) -> None:
        self.objects: dict[tuple[str, str, str], bytes] = {}
        self.calls: list[tuple[str, str, str, int, int]] = []
        self.delay_s = delay_s
        self.piece = piece
        self.failures: dict[int, BaseException] = {}  # block start -> raised once, after the first piece
        self.short: set[int] = set()  # block starts answered one byte short
        self.long: set[int] = set()  # block starts answered one byte too long

    def put(self, data: bytes, etag: str = "etag1", bucket: str = BUCKET, key: str = KEY) -> ObjectMeta:
        self.objects[(bucket, key, etag)] = data
        return ObjectMeta(key, len(data), etag, 1_700_000_000.0)

    def starts(self) -> Counter[int]:
        return Counter(start for _, _, _, start, _ in self.calls)

    async def fetch(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        self.calls.append((bucket, key, etag, start, end))
        data = self.objects[(bucket, key, etag)]
        if start in self.short:
            end -= 1
        if start in self.long:
            end += 1
        for offset in range(start, end, self.piece):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            else:
                await asyncio.sleep(0)
            yield data[offset:min(end, offset + self.piece)]
            if start in self.failures:
                raise self.failures.pop(start)


def payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def make(tmp_path: Path, origin: Origin, readahead: int = 2, capacity: int = 1 << 30) -> BlockReader:
    return BlockReader(BlockStore(tmp_path / "blocks", capacity), BS, origin.fetch, readahead_blocks=readahead)


async def read(reader: BlockReader, meta: ObjectMeta, start: int, end: int, chunk: int = 1 << 20,
               bucket: str = BUCKET) -> bytes:
    pieces = []
    async for piece in reader.stream(bucket, meta, start, end, chunk):
        assert 0 < len(piece) <= chunk
        pieces.append(piece)
    return b"".join(pieces)


async def settled(reader: BlockReader, meta: ObjectMeta, bucket: str = BUCKET) -> None:
    """Wait until every block of meta is in the block store (fills write after they hand bytes out)."""
    ids = [block_id(bucket, meta.key, meta.etag, i, BS) for i in range(-(-meta.size // BS))]
    for _ in range(2000):
        if all(i in reader.blocks for i in ids):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("blocks were not written to the store")


def generator(stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    return cast(AsyncGenerator[bytes, None], stream)  # stream() is an async generator: it can be closed


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


SIZE = 5 * BS + 123
POINTS = sorted({0, 1, BS - 1, BS, BS + 1, 2 * BS - 1, 2 * BS, 3 * BS + 7, 4 * BS, 5 * BS - 1, 5 * BS, 5 * BS + 1,
                 SIZE - 1, SIZE})


@pytest.mark.parametrize("chunk", [1000, BS, 1 << 20])
def test_every_range_returns_exact_bytes(tmp_path: Path, chunk: int) -> None:
    origin = Origin()
    data = payload(SIZE)
    meta = origin.put(data)
    reader = make(tmp_path, origin)

    async def go() -> None:
        for start in POINTS:
            for end in POINTS:
                if start < end:
                    assert await read(reader, meta, start, end, chunk) == data[start:end], (start, end)
                else:
                    assert await read(reader, meta, start, end, chunk) == b""

    run(go)
    for bucket, key, etag, start, end in origin.calls:  # block-aligned fetches of the right version
        assert (bucket, key, etag) == (BUCKET, KEY, "etag1")
        assert start % BS == 0 and end == min(start + BS, SIZE)
    assert max(origin.starts().values()) <= 2  # each block fetched once, or again if evicted/raced at most once


def test_random_ranges_cold_and_warm(tmp_path: Path) -> None:
    origin = Origin(piece=777)
    data = payload(7 * BS + 1, 5)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=1)
    rng = random.Random(42)

    async def go() -> None:
        for _ in range(150):
            start = rng.randrange(0, len(data))
            end = rng.randrange(start, len(data) + 1)
            chunk = rng.choice([1, 100, 4096, 10_000])
            if end - start > 3000 and chunk == 1:
                chunk = 100
            assert await read(reader, meta, start, end, chunk) == data[start:end]

    run(go)


def test_concurrent_readers_of_a_cold_object_share_one_fetch_per_block(tmp_path: Path) -> None:
    origin = Origin(delay_s=0.001, piece=512)
    data = payload(SIZE, 2)
    meta = origin.put(data)
    reader = make(tmp_path, origin)

    async def go() -> list[bytes]:
        return list(await asyncio.gather(*(read(reader, meta, 0, SIZE, 700) for _ in range(50))))

    results = run(go)
    assert all(r == data for r in results)
    assert origin.starts() == Counter({i * BS: 1 for i in range(6)})


def test_concurrent_readers_of_different_ranges_share_fetches(tmp_path: Path) -> None:
    origin = Origin(delay_s=0.001, piece=512)
    data = payload(SIZE, 3)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=0)
    ranges = [(s, min(SIZE, s + 3000)) for s in range(0, SIZE, 500)]

    async def go() -> list[bytes]:
        return list(await asyncio.gather(*(read(reader, meta, s, e, 256) for s, e in ranges)))

    assert run(go) == [data[s:e] for s, e in ranges]
    assert set(origin.starts().values()) == {1}


def test_a_second_read_makes_no_fetch(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 4)
    meta = origin.put(data)
    reader = make(tmp_path, origin)

    async def go() -> None:
        assert await read(reader, meta, 0, SIZE) == data
        await settled(reader, meta)
        fetched = len(origin.calls)
        assert fetched == 6
        assert await read(reader, meta, 0, SIZE, 999) == data
        assert await read(reader, meta, BS - 5, 3 * BS + 5, 64) == data[BS - 5:3 * BS + 5]
        assert len(origin.calls) == fetched

    run(go)
    assert reader.blocks.hits > 0


def test_a_restarted_reader_uses_blocks_already_on_disk(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 4)
    meta = origin.put(data)

    async def first() -> None:
        reader = make(tmp_path, origin)
        assert await read(reader, meta, 0, SIZE) == data
        await settled(reader, meta)

    run(first)
    fetched = len(origin.calls)

    async def second() -> None:
        store = BlockStore(tmp_path / "blocks", 1 << 30)
        store.load()
        reader = BlockReader(store, BS, origin.fetch)
        assert await read(reader, meta, 0, SIZE) == data

    run(second)
    assert len(origin.calls) == fetched


def test_read_ahead_starts_the_next_blocks_of_a_sequential_read(tmp_path: Path) -> None:
    origin = Origin(delay_s=0.002)
    data = payload(SIZE, 5)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=2)

    async def go() -> None:
        async with aclosing(generator(reader.stream(BUCKET, meta, 0, SIZE, 100))) as stream:  # a whole-object read
            first = await anext(stream)
            assert first == data[:100]
            for _ in range(5):
                await asyncio.sleep(0)
            assert sorted(origin.starts()) == [0, BS, 2 * BS]  # block 0 and the two after it, no more

    run(go)


def test_read_ahead_follows_a_reader_that_continues_where_it_left_off(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 6)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=2)

    async def go() -> None:
        assert await read(reader, meta, 0, BS) == data[:BS]
        await asyncio.sleep(0.01)
        assert sorted(origin.starts()) == [0]  # one ranged read says nothing about the next
        assert await read(reader, meta, BS, 2 * BS) == data[BS:2 * BS]  # continues: sequential
        await asyncio.sleep(0.01)
        assert sorted(origin.starts()) == [0, BS, 2 * BS, 3 * BS]
        assert await read(reader, meta, 5 * BS, 5 * BS + 10) == data[5 * BS:5 * BS + 10]  # a jump: no read-ahead
        await asyncio.sleep(0.01)
        assert sorted(origin.starts()) == [0, BS, 2 * BS, 3 * BS, 5 * BS]

    run(go)


def test_no_read_ahead_when_disabled(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 6)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=0)

    async def go() -> None:
        async with aclosing(generator(reader.stream(BUCKET, meta, 0, SIZE, 100))) as stream:
            await anext(stream)
            await asyncio.sleep(0.01)
            assert sorted(origin.starts()) == [0]

    run(go)


def test_read_ahead_stops_at_the_end_of_the_object(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(2 * BS + 5, 6)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=8)

    async def go() -> None:
        assert await read(reader, meta, 0, len(data)) == data
        await asyncio.sleep(0.01)

    run(go)
    assert origin.starts() == Counter({0: 1, BS: 1, 2 * BS: 1})


@pytest.mark.parametrize("error", [S3Error("SlowDown"), S3Error("PreconditionFailed"),
                                   S3Error("ServiceUnavailable", "The origin http://o is unreachable")])
def test_a_failed_fetch_reaches_every_waiting_reader_and_the_next_read_retries(
    tmp_path: Path, error: S3Error
) -> None:
    origin = Origin(delay_s=0.002, piece=500)
    data = payload(SIZE, 7)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=0)
    origin.failures[BS] = error

    async def one() -> BaseException | bytes:
        try:
            return await read(reader, meta, BS, 2 * BS, 100)
        except S3Error as exc:
            return exc

    async def go() -> None:
        results = await asyncio.gather(*(one() for _ in range(10)))
        for got in results:
            assert isinstance(got, S3Error) and got.code == error.code and got.message == error.message
        assert origin.starts() == Counter({BS: 1})
        assert await read(reader, meta, BS, 2 * BS) == data[BS:2 * BS]  # a new fetch, which succeeds
        assert origin.starts() == Counter({BS: 2})
        await settled_block(reader, meta, 1)

    run(go)


async def settled_block(reader: BlockReader, meta: ObjectMeta, index: int) -> None:
    for _ in range(2000):
        if block_id(BUCKET, meta.key, meta.etag, index, BS) in reader.blocks:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("block not written")


def test_a_fetch_that_breaks_with_another_exception_becomes_an_internal_error(tmp_path: Path) -> None:
    origin = Origin(piece=500)
    data = payload(SIZE, 8)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=0)
    origin.failures[0] = ConnectionResetError("boom")

    async def go() -> None:
        with pytest.raises(S3Error) as caught:
            await read(reader, meta, 0, BS)
        assert caught.value.code == "InternalError"
        assert await read(reader, meta, 0, BS) == data[:BS]

    run(go)
    assert origin.starts() == Counter({0: 2})


@pytest.mark.parametrize("which", ["short", "long"])
def test_a_fetch_with_the_wrong_length_is_an_internal_error_and_not_cached(tmp_path: Path, which: str) -> None:
    origin = Origin()
    data = payload(SIZE, 9)
    meta = origin.put(data)
    reader = make(tmp_path, origin, readahead=0)
    getattr(origin, which).add(2 * BS)

    async def go() -> None:
        with pytest.raises(S3Error) as caught:
            await read(reader, meta, 2 * BS, 3 * BS)
        assert caught.value.code == "InternalError"
        await asyncio.sleep(0.01)
        assert block_id(BUCKET, KEY, "etag1", 2, BS) not in reader.blocks
        getattr(origin, which).clear()
        assert await read(reader, meta, 2 * BS, 3 * BS) == data[2 * BS:3 * BS]

    run(go)
    assert origin.starts() == Counter({2 * BS: 2})


def test_a_corrupt_cached_block_is_refetched_transparently(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 10)
    meta = origin.put(data)
    reader = make(tmp_path, origin)

    async def go() -> None:
        assert await read(reader, meta, 0, SIZE) == data
        await settled(reader, meta)
        path = reader.blocks.path(block_id(BUCKET, KEY, "etag1", 2, BS))
        with open(path, "r+b") as fh:
            fh.seek(-100, 2)  # a byte of the block's data near its end
            byte = fh.read(1)
            fh.seek(-100, 2)
            fh.write(bytes([byte[0] ^ 0xFF]))
        before = origin.starts()
        assert await read(reader, meta, 0, SIZE, 1000) == data
        assert origin.starts() - before == Counter({2 * BS: 1})
        await settled(reader, meta)
        assert await read(reader, meta, 2 * BS, 3 * BS) == data[2 * BS:3 * BS]
        assert origin.starts() - before == Counter({2 * BS: 1})

    run(go)


def test_a_block_evicted_between_reads_is_fetched_again(tmp_path: Path) -> None:
    origin = Origin()
    data = payload(SIZE, 11)
    meta = origin.put(data)
    reader = make(tmp_path, origin)

    async def go() -> None:
        assert await read(reader, meta, 0, SIZE) == data
        await settled(reader, meta)
        reader.blocks.remove(block_id(BUCKET, KEY, "etag1", 4, BS))
        assert await read(reader, meta, 0, SIZE) == data

    run(go)
    assert origin.starts()[4 * BS] == 2 and origin.starts()[3 * BS] == 1


def test_block_ids_differ_per_object_version_and_index() -> None:
    base = block_id("b", "k", "etag1", 0, BS)
    assert len(base) == 64 and int(base, 16) >= 0
    assert base == block_id("b", "k", "etag1", 0, BS)
    others = [block_id("b", "k", "etag2", 0, BS), block_id("b", "k", "etag1", 1, BS),
              block_id("b", "k2", "etag1", 0, BS), block_id("b2", "k", "etag1", 0, BS),
              block_id("b", "k", "etag1", 0, 2 * BS), block_id("b", "k\0etag1", "", 0, BS)]
    assert len({base, *others}) == len(others) + 1


def test_a_changed_object_is_never_served_from_old_blocks(tmp_path: Path) -> None:
    origin = Origin()
    old = payload(SIZE, 12)
    new = payload(SIZE, 13)
    meta_old = origin.put(old, "etag1")
    meta_new = origin.put(new, "etag2")
    reader = make(tmp_path, origin)

    async def go() -> None:
        assert await read(reader, meta_old, 0, SIZE) == old
        await settled(reader, meta_old)
        assert await read(reader, meta_new, 0, SIZE) == new
        assert await read(reader, meta_old, 0, SIZE) == old

    run(go)
    assert Counter(etag for _, _, etag, _, _ in origin.calls) == Counter({"etag1": 6, "etag2": 6})


def test_the_read_ahead_window_doubles_while_a_sequential_reader_keeps_up(tmp_path: Path) -> None:
    """Start with readahead_blocks ahead; every block read doubles the window, up to readahead_max_blocks."""
    origin = Origin()
    data = payload(40 * BS, 7)
    meta = origin.put(data)
    reader = BlockReader(BlockStore(tmp_path / "blocks", 1 << 30), BS, origin.fetch, readahead_blocks=1,
                         max_fills=64, readahead_max_blocks=8)

    async def go() -> None:
        async with aclosing(generator(reader.stream(BUCKET, meta, 0, len(data), BS))) as stream:
            expected_last = [1, 3, 6, 11, 12, 13]  # windows 1, 2, 4, 8, then 8 for good
            for index, last in enumerate(expected_last):
                assert await anext(stream) == data[index * BS:(index + 1) * BS]
                await asyncio.sleep(0.01)
                assert max(origin.starts()) // BS == last, (index, sorted(origin.starts()))
        assert all(count == 1 for count in origin.starts().values())

    run(go)


def test_random_single_block_reads_trigger_no_read_ahead(tmp_path: Path) -> None:
    """A map-style dataset reads records at random: every fetch is a block some read asked for."""
    origin = Origin()
    data = payload(64 * BS, 8)
    meta = origin.put(data)
    reader = BlockReader(BlockStore(tmp_path / "blocks", 1 << 30), BS, origin.fetch, readahead_blocks=2,
                         readahead_max_blocks=16)
    rng = random.Random(3)
    wanted: set[int] = set()

    async def go() -> None:
        for _ in range(40):
            index = rng.randrange(64)
            lo = index * BS + rng.randrange(BS - 100)
            wanted.add(index)
            assert await read(reader, meta, lo, lo + 100) == data[lo:lo + 100]
        await asyncio.sleep(0.01)

    run(go)
    assert set(origin.starts()) == {i * BS for i in wanted} and all(c == 1 for c in origin.starts().values())


class _Peer:
    """Another worker that owns every block: route() always names it, read_block() serves from the origin's bytes
    and records each request (lo == hi: a hint to warm the block)."""

    def __init__(self, origin: Origin, meta: ObjectMeta) -> None:
        self.data = origin.objects[(BUCKET, meta.key, meta.etag)]
        self.requests: list[tuple[int, int, int]] = []  # (block index, lo, hi)

    async def route(self, bid: str, placed_by: str) -> list[str]:
        await asyncio.sleep(0)
        return ["peer"]

    def url_of(self, worker_id: str) -> str:
        return f"http://{worker_id}"

    def suspect(self, worker_id: str) -> None:
        raise AssertionError("the peer never fails here")

    async def read_block(self, url: str, bucket: str, meta: ObjectMeta, index: int, lo: int,
                         hi: int) -> AsyncIterator[bytes]:
        self.requests.append((index, lo, hi))
        await asyncio.sleep(0)
        if hi > lo:
            yield self.data[index * BS + lo:index * BS + hi]


def test_many_sequential_readers_hint_each_blocks_owner_once(tmp_path: Path) -> None:
    """In a cluster read-ahead asks a block's owner to warm it: once per block, however many readers walk the same
    window (one hint per reader per block swamped the owners of a hot object)."""
    origin = Origin()
    data = payload(20 * BS, 9)
    meta = origin.put(data)
    peer = _Peer(origin, meta)
    reader = BlockReader(BlockStore(tmp_path / "blocks", 1 << 30), BS, origin.fetch, readahead_blocks=2,
                         readahead_max_blocks=8, cluster=cast(Any, peer), peers=cast(Any, peer))

    async def go() -> list[bytes]:
        return await asyncio.gather(*(read(reader, meta, 0, len(data), BS) for _ in range(8)))

    assert run(go) == [data] * 8
    hints = Counter(index for index, lo, hi in peer.requests if lo == hi)
    assert set(hints) == set(range(1, 20)) and set(hints.values()) == {1}, hints
    assert origin.calls == [], "only the owner fetches from the origin"
