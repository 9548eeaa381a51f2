"""Keys held for a write: one holder at a time, 409 ConditionalRequestConflict for a waiter past the wait, in
one process (LocalLocks) and across processes serving one directory (FileLocks: two instances here stand for two
processes, as flock excludes two open files of one lock file even in one process); and the guarded write."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest

from cache.s3.errors import S3Error, no_such_key
from cache.s3.model import UNCONDITIONAL, ObjectMeta, WriteConditions
from cache.storage.directory.layout import BucketPaths
from cache.storage.directory.locks import STRIPES, FileLocks
from cache.storage.locks import LocalLocks, conditional_write

META = ObjectMeta(key="k", size=1, etag="abc", last_modified=0.0)


def test_local_locks_exclude_and_time_out() -> None:
    async def go() -> list[str]:
        locks = LocalLocks(0.05)
        seen: list[str] = []
        async with locks.hold("b", "k"):
            with pytest.raises(S3Error) as exc:
                async with locks.hold("b", "k"):
                    seen.append("twice")
            seen.append(exc.value.code)
        async with locks.hold("b", "k"):  # released: free again
            seen.append("again")
        return seen

    assert asyncio.run(go()) == ["ConditionalRequestConflict", "again"]


def test_file_locks_exclude_across_holders_and_time_out(tmp_path: Path) -> None:
    assert zlib.crc32(b"k") % STRIPES != zlib.crc32(b"other key, other stripe") % STRIPES
    paths = BucketPaths(tmp_path / "bucket")
    paths.root.mkdir()

    async def go() -> list[str]:
        first, second = FileLocks(0.05), FileLocks(0.05)
        seen: list[str] = []
        async with first.hold(paths, "k"):
            with pytest.raises(S3Error) as exc:
                async with second.hold(paths, "k"):
                    seen.append("twice")
            seen.append(exc.value.code)
            async with second.hold(paths, "other key, other stripe"):
                seen.append("other")
        async with second.hold(paths, "k"):
            seen.append("again")
        return seen

    assert asyncio.run(go()) == ["ConditionalRequestConflict", "other", "again"]
    assert (paths.system / "locks").is_dir()


def test_a_waiter_gets_the_key_once_it_is_let_go(tmp_path: Path) -> None:
    paths = BucketPaths(tmp_path / "bucket")
    paths.root.mkdir()

    async def go() -> list[str]:
        first, second = FileLocks(5.0), FileLocks(5.0)
        order: list[str] = []

        async def hold_briefly() -> None:
            async with first.hold(paths, "k"):
                order.append("first in")
                await asyncio.sleep(0.05)
                order.append("first out")

        async def wait_then_hold() -> None:
            await asyncio.sleep(0.01)
            async with second.hold(paths, "k"):
                order.append("second in")

        await asyncio.gather(hold_briefly(), wait_then_hold())
        return order

    assert asyncio.run(go()) == ["first in", "first out", "second in"]


def run_write(conditions: WriteConditions, current: ObjectMeta | None,
              settled: bool = False) -> tuple[list[str], S3Error | None]:
    calls: list[str] = []

    async def head() -> ObjectMeta:
        calls.append("head")
        if current is None:
            raise no_such_key("k")
        return current

    async def write() -> str:
        calls.append("write")
        return "written"

    async def go() -> S3Error | None:
        try:
            assert await conditional_write(LocalLocks(1.0), "b", "k", conditions, head, write,
                                           lambda _: settled) == "written"
        except S3Error as error:
            return error
        return None

    error = asyncio.run(go())
    return calls, error


def test_conditional_write() -> None:
    assert run_write(UNCONDITIONAL, META) == (["write"], None)  # nothing to judge: no lookup
    assert run_write(WriteConditions(if_none_match="*"), None) == (["head", "write"], None)
    calls, error = run_write(WriteConditions(if_none_match="*"), META)
    assert calls == ["head"] and error is not None and error.code == "PreconditionFailed"
    calls, error = run_write(WriteConditions(if_match="zzz"), None)
    assert calls == ["head"] and error is not None and error.code == "NoSuchKey"
    # a Complete retried after its answer was lost: the object is its own, let through to the origin
    assert run_write(WriteConditions(if_none_match="*"), META, settled=True) == (["head", "write"], None)
