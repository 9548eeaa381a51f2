"""cache.cluster.registry and its shared metadata against a real redis-server: the read-after-write contract between workers.

Each worker's registry runs on an event loop of its own (a thread), as it would in its own process, so one
worker being busy cannot be papered over by the test's scheduling.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cache.cluster.registry import Registry
from cache.cluster.shared import ACK_TIMEOUT_S
from cache.s3.model import ObjectMeta
from rig.redis import RedisServer

T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a thread: one 'worker'."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stall(self, seconds: float) -> None:
        """Block this loop (a worker busy on CPU) for a while, from now."""
        started = threading.Event()

        def busy() -> None:
            started.set()
            time.sleep(seconds)
        self.loop.call_soon_threadsafe(busy)
        started.wait()

    def close(self) -> None:
        async def drain() -> None:  # whatever is left (a busy machine can outlast stop()'s waits) ends here
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=5) if tasks else None
        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Member:
    def __init__(self, redis_url: str, worker_id: str) -> None:
        self.thread = LoopThread()
        self.dropped: list[tuple[str, str, float]] = []
        # A heartbeat TTL longer than any stall below: a stalled member stays registered.
        self.registry = Registry(redis_url, worker_id, f"http://{worker_id}", heartbeat_ttl_s=10.0)
        self.registry.on_invalidate = lambda bucket, key: self.dropped.append((bucket, key, time.monotonic()))
        self.thread.run(self.registry.start(registering=True))
        self.thread.run(asyncio.sleep(0))
        self.dropped.clear()  # joining drops everything (invalidations may have been missed): not under test

    def close(self) -> None:
        self.thread.run(self.registry.stop())
        self.thread.close()


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture()
def members(redis_server: RedisServer) -> Iterator[list[Member]]:
    started = [Member(redis_server.url, f"w{i}") for i in range(3)]
    time.sleep(0.2)  # every subscriber is listening
    yield started
    for member in started:
        member.close()


META = ObjectMeta(key="k", size=11, etag="0" * 32, last_modified=1_700_000_000.0,
                  headers={"content-type": "text/plain"}, user_metadata={"a": "b"})


def test_a_write_returns_only_after_every_worker_dropped_the_key(members: list[Member]) -> None:
    writer, busy, _ = members
    busy.thread.stall(0.3)  # this worker reads the invalidation only after 0.3 s
    before = time.monotonic()
    writer.thread.run(writer.registry.invalidate("bkt", "dir/a key"))
    returned = time.monotonic()
    for member in members:
        assert [(b, k) for b, k, _ in member.dropped] == [("bkt", "dir/a key")], member.registry.worker_id
        assert member.dropped[0][2] <= returned
    assert returned - before >= 0.25, "the write did not wait for the stalled worker"
    assert (writer.registry.invalidations, writer.registry.unacknowledged) == (1, 0)


def test_a_stalled_worker_delays_a_write_by_the_ack_timeout_at_most(members: list[Member]) -> None:
    writer, stalled, _ = members
    stalled.thread.stall(ACK_TIMEOUT_S + 3.0)
    before = time.monotonic()
    writer.thread.run(writer.registry.invalidate("bkt", "k"))
    waited = time.monotonic() - before
    assert ACK_TIMEOUT_S * 0.9 <= waited < ACK_TIMEOUT_S + 2.0, waited  # gave up long before the stall ended
    assert (writer.registry.invalidations, writer.registry.unacknowledged) == (1, 1)
    assert stalled.dropped == []
    deadline = time.monotonic() + 8
    while not stalled.dropped:  # it catches up once it runs again
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert [(b, k) for b, k, _ in stalled.dropped] == [("bkt", "k")]


def test_shared_metadata_round_trips(members: list[Member]) -> None:
    a, b, _ = members
    meta, generation = a.thread.run(a.registry.get_meta("bkt", "k"))
    assert meta is None and generation == "0"
    assert a.thread.run(a.registry.put_meta("bkt", META, 60, generation)) is True
    shared, _ = b.thread.run(b.registry.get_meta("bkt", "k"))
    assert shared is not None
    assert (shared.size, shared.etag, shared.last_modified, shared.headers, shared.user_metadata) == \
        (META.size, META.etag, META.last_modified, META.headers, META.user_metadata)


def test_metadata_learned_before_a_write_is_not_shared_after_it(members: list[Member]) -> None:
    """A HEAD that raced a write: its (old) answer must not be put back for a whole TTL."""
    reader, writer, third = members
    _, generation = reader.thread.run(reader.registry.get_meta("bkt", "k"))  # before its HEAD
    writer.thread.run(writer.registry.invalidate("bkt", "k"))  # the write lands meanwhile
    assert reader.thread.run(reader.registry.put_meta("bkt", META, 60, generation)) is False
    assert third.thread.run(third.registry.get_meta("bkt", "k"))[0] is None
    _, fresh = reader.thread.run(reader.registry.get_meta("bkt", "k"))  # a HEAD after the write may share
    assert fresh != generation
    assert reader.thread.run(reader.registry.put_meta("bkt", META, 60, fresh)) is True
    assert third.thread.run(third.registry.get_meta("bkt", "k"))[0] is not None
    writer.thread.run(writer.registry.invalidate("bkt", "k"))
    assert third.thread.run(third.registry.get_meta("bkt", "k"))[0] is None  # a write drops the shared copy
