"""cache.blocks.store.BlockStore on a real directory: round trips, per-page checksums, capacity, restart, check, failures."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cache.blocks.store as blocks_module
from cache.blocks.store import PAGE_BYTES, BlockCorrupt, BlockStore, decode_header, encode

KIB = 1 << 10
MIB = 1 << 20


def bid(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def block_files(directory: Path) -> set[str]:
    """Names of the block files on disk (everything outside tmp/)."""
    return {p.name for p in directory.rglob("*") if p.is_file() and p.parent.name != "tmp"}


def tmp_files(directory: Path) -> list[Path]:
    return list((directory / "tmp").iterdir())


def flip(path: str | Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def header_size(data_len: int) -> int:
    return len(encode(b"\0" * data_len))


def store_at(tmp_path: Path, capacity: int = 64 * MIB, policy: str = "lru") -> BlockStore:
    return BlockStore(tmp_path / "blocks", capacity, policy)


# ---- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, PAGE_BYTES - 1, PAGE_BYTES, PAGE_BYTES + 1, 4 * MIB])
def test_write_read_round_trip(tmp_path: Path, size: int) -> None:
    store = store_at(tmp_path)
    data = payload(size, size)

    async def go() -> bytes:
        assert await store.write(bid(size), data) is True
        return await store.read(bid(size), 0, size)

    assert run(go()) == data
    assert bid(size) in store and len(store) == 1
    assert store.reserved_bytes == 0
    on_disk = os.path.getsize(store.path(bid(size)))
    assert on_disk == size + header_size(size) and store.used_bytes == on_disk
    assert block_files(store.directory) == {bid(size)}
    assert tmp_files(store.directory) == []


def test_block_file_layout(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(1), b"hello"))
    path = Path(store.path(bid(1)))
    assert path.parent.name == bid(1)[:2] and path.parent.parent == store.directory
    raw = path.read_bytes()
    header = decode_header(raw)
    assert raw[:4] == b"S3CB" and header.data_len == 5 and header.page_bytes == PAGE_BYTES
    assert raw[header.size:] == b"hello"


def test_read_of_a_block_not_cached_is_a_key_error(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    with pytest.raises(KeyError):
        run(store.read(bid("absent"), 0, 1))


def test_read_after_the_file_vanished_drops_the_block(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(1), b"x" * 100))
    os.unlink(store.path(bid(1)))
    with pytest.raises(KeyError):
        run(store.read(bid(1), 0, 100))
    assert bid(1) not in store and store.used_bytes == 0


SIZE = 3 * PAGE_BYTES + 100  # four pages, the last one short
POINTS = sorted({0, 1, PAGE_BYTES - 1, PAGE_BYTES, PAGE_BYTES + 1, 2 * PAGE_BYTES - 1, 2 * PAGE_BYTES,
                 2 * PAGE_BYTES + 1, 3 * PAGE_BYTES - 1, 3 * PAGE_BYTES, 3 * PAGE_BYTES + 1, SIZE - 1, SIZE})
RANGES = [(a, b) for a in POINTS for b in POINTS if a <= b]


def test_every_sub_range_returns_exact_bytes_and_reads_only_its_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_at(tmp_path)
    data = payload(SIZE, 7)
    run(store.write(bid("r"), data))
    hdr = header_size(SIZE)
    calls: list[tuple[int, int]] = []
    real_pread = blocks_module.pread

    async def spy(fd: int, size: int, offset: int) -> bytes:
        calls.append((size, offset))
        return await real_pread(fd, size, offset)

    monkeypatch.setattr(blocks_module, "pread", spy)

    async def go() -> None:
        for start, end in RANGES:
            calls.clear()
            got = await store.read(bid("r"), start, end)
            assert got == data[start:end], (start, end)
            if start == end:
                continue
            lo = hdr + (start // PAGE_BYTES) * PAGE_BYTES
            hi = hdr + min(SIZE, ((end - 1) // PAGE_BYTES + 1) * PAGE_BYTES)
            body_reads = [(size, offset) for size, offset in calls if offset >= hdr]
            assert body_reads, (start, end)
            for size, offset in body_reads:
                assert lo <= offset and offset + size <= hi, ((start, end), (size, offset))

    run(go())


@pytest.mark.parametrize("size", [PAGE_BYTES, 2 * PAGE_BYTES, 100])
def test_empty_reads_anywhere_in_the_block(tmp_path: Path, size: int) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(size), payload(size)))

    async def go() -> None:
        for at in (0, 1, size // 2, size - 1, size):
            assert await store.read(bid(size), at, at) == b""

    run(go())
    assert bid(size) in store


def test_a_range_past_the_end_is_refused(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(1), b"abc"))
    with pytest.raises(BlockCorrupt):
        run(store.read(bid(1), 0, 4))


# ---- corruption ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [0, 1, 2, 3])
def test_a_flipped_byte_in_any_page_is_detected_by_reads_of_that_page_only(tmp_path: Path, page: int) -> None:
    store = store_at(tmp_path)
    data = payload(SIZE, 3)
    run(store.write(bid("c"), data))
    hdr = header_size(SIZE)
    where = page * PAGE_BYTES + min(PAGE_BYTES, SIZE - page * PAGE_BYTES) // 2
    flip(store.path(bid("c")), hdr + where)
    used_before = store.used_bytes

    async def go() -> None:
        for other in range(4):  # pages other than the corrupt one still read fine (each is checked alone)
            if other != page:
                lo = other * PAGE_BYTES
                assert await store.read(bid("c"), lo, min(SIZE, lo + PAGE_BYTES)) == data[lo:lo + PAGE_BYTES]
        with pytest.raises(BlockCorrupt):
            await store.read(bid("c"), where, where + 1)

    run(go())
    assert bid("c") not in store and len(store) == 0
    assert not os.path.exists(store.path(bid("c")))
    assert store.used_bytes == used_before - (SIZE + hdr) == 0
    with pytest.raises(KeyError):
        run(store.read(bid("c"), 0, 1))


def test_a_flipped_checksum_is_detected(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid("k"), payload(2 * PAGE_BYTES)))
    flip(store.path(bid("k")), header_size(2 * PAGE_BYTES) - 1)  # last byte of the checksum table: page 1
    with pytest.raises(BlockCorrupt):
        run(store.read(bid("k"), PAGE_BYTES, PAGE_BYTES + 10))
    assert bid("k") not in store and not os.path.exists(store.path(bid("k")))


@pytest.mark.parametrize("offset", [0, 3, 4, 8, 16, 20])  # magic, magic, version, data_len, page_bytes, pages
def test_a_bad_header_is_detected_and_dropped(tmp_path: Path, offset: int) -> None:
    store = store_at(tmp_path)
    run(store.write(bid("h"), payload(SIZE)))
    flip(store.path(bid("h")), offset)
    with pytest.raises(BlockCorrupt):
        run(store.read(bid("h"), 0, SIZE))
    assert bid("h") not in store and store.used_bytes == 0
    assert not os.path.exists(store.path(bid("h")))


def test_a_truncated_block_is_detected(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid("t"), payload(2 * PAGE_BYTES)))
    os.truncate(store.path(bid("t")), header_size(2 * PAGE_BYTES) + PAGE_BYTES + 5)
    with pytest.raises(BlockCorrupt):
        run(store.read(bid("t"), 0, 2 * PAGE_BYTES))
    assert bid("t") not in store and not os.path.exists(store.path(bid("t")))


# ---- capacity -----------------------------------------------------------------------------------


def check_accounting(store: BlockStore) -> None:
    files = block_files(store.directory)
    assert len(files) == len(store)
    assert all(name in store for name in files)
    assert store.used_bytes == sum(os.path.getsize(store.path(name)) for name in files)
    assert store.used_bytes <= store.capacity_bytes
    assert store.reserved_bytes == 0


@pytest.mark.parametrize("policy", ["lru", "s3fifo"])
def test_writing_more_than_the_capacity_stays_within_it(tmp_path: Path, policy: str) -> None:
    one = 10 * KIB + header_size(10 * KIB)
    store = store_at(tmp_path, capacity=10 * one + one // 2, policy=policy)

    async def go() -> None:
        for n in range(40):
            assert await store.write(bid(n), payload(10 * KIB, n)) is True
            check_accounting(store)
            if n % 3 == 0:  # some reads in between, so the policy has something to go on
                await store.read(bid(n), 0, 10)

    run(go())
    assert len(store) == 10 and store.evictions == 30
    assert bid(39) in store  # the block just written is never its own victim


def test_concurrent_writes_stay_within_capacity(tmp_path: Path) -> None:
    one = 10 * KIB + header_size(10 * KIB)
    store = store_at(tmp_path, capacity=5 * one)

    async def go() -> list[bool]:
        return list(await asyncio.gather(*(store.write(bid(n), payload(10 * KIB, n)) for n in range(20))))

    results = run(go())
    check_accounting(store)
    assert len(store) == sum(results) - store.evictions >= 1


def test_lru_evicts_the_least_recently_read(tmp_path: Path) -> None:
    one = 1 * KIB + header_size(1 * KIB)
    store = store_at(tmp_path, capacity=3 * one)

    async def go() -> None:
        for n in range(3):
            await store.write(bid(n), payload(KIB, n))
        await store.read(bid(0), 0, 1)  # 1 is now the least recently used
        await store.write(bid(3), payload(KIB, 3))

    run(go())
    assert bid(1) not in store and {bid(0), bid(2), bid(3)} <= set(block_files(store.directory))


def test_a_block_larger_than_the_capacity_is_not_cached(tmp_path: Path) -> None:
    store = store_at(tmp_path, capacity=100 * KIB)
    run(store.write(bid("small"), payload(KIB)))
    used = store.used_bytes
    assert run(store.write(bid("big"), payload(100 * KIB))) is False  # 100 KiB + header > 100 KiB
    assert bid("big") not in store and bid("small") in store  # and nothing was evicted for it
    assert store.used_bytes == used and store.reserved_bytes == 0
    assert block_files(store.directory) == {bid("small")}
    assert tmp_files(store.directory) == []
    with pytest.raises(KeyError):
        run(store.read(bid("big"), 0, 1))


def test_writing_a_block_already_cached_changes_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(1), b"first"))
    used = store.used_bytes
    assert run(store.write(bid(1), b"first")) is True
    assert store.used_bytes == used and len(store) == 1 and store.reserved_bytes == 0


# ---- restart: load() ----------------------------------------------------------------------------


def test_load_rebuilds_the_index_after_a_restart(tmp_path: Path) -> None:
    first = store_at(tmp_path)
    datas = {n: payload(n * 1000 + 1, n) for n in range(6)}

    async def fill() -> None:
        for n, data in datas.items():
            await first.write(bid(n), data)

    run(fill())
    (first.directory / "tmp" / "half-written").write_bytes(b"partial")

    second = store_at(tmp_path)
    assert second.load() == 6
    assert len(second) == 6 and second.used_bytes == first.used_bytes
    assert tmp_files(second.directory) == []

    async def read_all() -> None:
        for n, data in datas.items():
            assert await second.read(bid(n), 0, len(data)) == data

    run(read_all())


def test_load_into_a_smaller_capacity_evicts_the_oldest_first(tmp_path: Path) -> None:
    first = store_at(tmp_path)
    one = 10 * KIB + header_size(10 * KIB)

    async def fill() -> None:
        for n in range(8):
            await first.write(bid(n), payload(10 * KIB, n))

    run(fill())
    for n in range(8):  # access times: 5, 2, 7 are the most recent, the others older
        age = {5: 100, 2: 200, 7: 300}.get(n, n)
        os.utime(first.path(bid(n)), (1_700_000_000 + age, 1_700_000_000))

    second = store_at(tmp_path, capacity=3 * one)
    assert second.load() == 3
    check_accounting(second)
    assert set(block_files(second.directory)) == {bid(5), bid(2), bid(7)}
    assert second.policy.victim() == bid(5)  # least recently accessed of those kept


def test_load_ignores_files_that_are_not_blocks(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run(store.write(bid(1), b"data"))
    (store.directory / bid(1)[:2] / "stray").write_bytes(b"x")
    (store.directory / "README").write_text("not a block directory")
    second = store_at(tmp_path)
    assert second.load() == 1 and bid(1) in second and "stray" not in second


# ---- check() ------------------------------------------------------------------------------------


def test_check_drops_orphans_partials_and_corrupt_blocks_and_keeps_good_ones(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    good = {n: payload(PAGE_BYTES + n, n) for n in range(3)}

    async def fill() -> None:
        for n, data in good.items():
            await store.write(bid(n), data)
        await store.write(bid("corrupt"), payload(3 * PAGE_BYTES))
        await store.write(bid("header"), payload(100))
        await store.write(bid("short"), payload(2 * PAGE_BYTES))

    run(fill())
    flip(store.path(bid("corrupt")), header_size(3 * PAGE_BYTES) + 2 * PAGE_BYTES + 17)
    flip(store.path(bid("header")), 1)
    os.truncate(store.path(bid("short")), header_size(2 * PAGE_BYTES) + 10)
    orphan = store.directory / bid(0)[:2] / "orphan.bin"
    orphan.write_bytes(b"?")
    misplaced = store.directory / "zz" / bid("misplaced")  # a block name in the wrong sub-directory
    misplaced.parent.mkdir(exist_ok=True)
    misplaced.write_bytes(b"?")
    (store.directory / "tmp" / "partial").write_bytes(b"half")

    report = store.check()

    assert (report.kept, report.dropped_corrupt, report.dropped_partial, report.dropped_orphan) == (3, 3, 1, 2)
    assert block_files(store.directory) == {bid(n) for n in good}
    assert tmp_files(store.directory) == []
    assert len(store) == 3 and all(bid(n) in store for n in good)
    check_accounting(store)

    async def read_good() -> None:
        for n, data in good.items():
            assert await store.read(bid(n), 0, len(data)) == data

    run(read_good())


def test_check_then_load_on_a_fresh_store(tmp_path: Path) -> None:
    first = store_at(tmp_path)
    run(first.write(bid("ok"), b"fine"))
    run(first.write(bid("bad"), b"broken"))
    flip(first.path(bid("bad")), header_size(6) + 2)
    second = store_at(tmp_path)
    report = second.check()
    assert (report.kept, report.dropped_corrupt) == (1, 1)
    assert second.load() == 1 and bid("ok") in second and bid("bad") not in second


# ---- write failures -----------------------------------------------------------------------------


def failing(err: int) -> Callable[..., None]:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(err, os.strerror(err))
    return boom


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
def test_a_failed_write_is_not_cached_and_releases_its_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    store = store_at(tmp_path)
    run(store.write(bid("before"), b"kept"))
    used = store.used_bytes
    monkeypatch.setattr(os, "replace", failing(err))
    assert run(store.write(bid("x"), payload(PAGE_BYTES * 2))) is False
    monkeypatch.undo()
    assert store.reserved_bytes == 0 and store.used_bytes == used
    assert bid("x") not in store and bid("before") in store
    assert block_files(store.directory) == {bid("before")}
    assert tmp_files(store.directory) == []
    # and the store still works afterwards
    assert run(store.write(bid("x"), b"again")) is True
    assert run(store.read(bid("x"), 0, 5)) == b"again"


def test_a_write_into_an_unwritable_directory_is_not_cached(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    # A file where the block's sub-directory belongs: the rename cannot happen, whoever runs the test.
    (store.directory / bid("blocked")[:2]).write_bytes(b"in the way")
    assert run(store.write(bid("blocked"), b"data")) is False
    assert store.reserved_bytes == 0 and store.used_bytes == 0 and bid("blocked") not in store
    assert tmp_files(store.directory) == []
