"""Redis killed, restarted and slowed under read and write load: three real workers reach a real redis-server
through a relay (rig/relay.py) that can add latency, over moto seen through a counting proxy.

Writers PUT versions of their own key through one worker; readers GET every key through the others. Each payload
carries its version and its own SHA-256. What must hold throughout: every read is one whole version; a read that
began after a write was answered gets that version or a later one (read-after-write, on every worker, with Redis
or without); writes succeed or fail with an S3 error. After Redis returns the workers rejoin and serve from
their caches again.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from rig.origin import ORIGIN_ENV, CountingProxy, MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer
from rig.relay import DelayRelay
from tests.conftest import make_client
from tests.faults.payloads import payload, version_of

pytestmark = pytest.mark.slow

IDS = ("w0", "w1", "w2")


@dataclass
class Rig:
    redis: RedisServer
    relay: DelayRelay
    counting: CountingProxy
    workers: dict[str, Worker]
    bucket: str = ""

    def url(self, wid: str, key: str) -> str:
        return f"{self.workers[wid].url}/{self.bucket}/{key}"


@pytest.fixture(scope="module")
def rig(moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("faults-redis")
    redis = RedisServer(workdir).start()
    relay = DelayRelay(redis.port).start()
    counting = CountingProxy(moto_origin.port).start()
    workers: dict[str, Worker] = {}
    try:
        for wid in IDS:
            (workdir / wid).mkdir()
            args = ["--data", str(workdir / wid / "data"), "--origin", counting.url, "--cache-dir",
                    str(workdir / wid / "blocks"), "--cache-capacity", "256M", "--block-size", "1M",
                    "--redis", f"redis://{relay.address}/0", "--worker-id", wid]
            env = {**ORIGIN_ENV, "S3CACHE_CLUSTER_SECRET": "redis-secret", "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5",
                   "S3CACHE_CACHE_METADATA_TTL_S": "600"}
            workers[wid] = Worker(args, workdir / wid, env=env, backend="s3").start()
        rig = Rig(redis, relay, counting, workers, f"r-{uuid.uuid4().hex[:12]}")
        make_client(moto_origin.url).create_bucket(Bucket=rig.bucket)
        yield rig
    finally:
        for w in workers.values():
            w.stop()
        counting.stop()
        relay.stop()
        redis.stop()


@dataclass
class Load:
    """Writers and readers of one key per writer, and what each of them saw."""

    rig: Rig
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    answered: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # key -> (when answered, version)
    failed_writes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    reads: int = 0
    began: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writer(self, key: str, wid: str) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": "AWS tester:x"}) as client:
            while not self.stop.is_set():
                with self.lock:
                    version = next(self.versions)
                response = client.put(self.rig.url(wid, key), content=payload(version, 300_000))
                if response.status_code != 200:  # a clear failure: an S3 error document
                    assert response.status_code >= 500 and b"<Code>" in response.content, response.text
                    with self.lock:
                        self.failed_writes.append(response.text)
                    continue
                with self.lock:
                    self.answered.setdefault(key, []).append((time.monotonic(), version))
                time.sleep(0.05)

    def reader(self, keys: list[str], wid: str) -> None:
        with httpx.Client(timeout=30, headers={"Authorization": "AWS tester:x"}) as client:
            while not self.stop.is_set():
                for key in keys:
                    with self.lock:
                        known = [v for _, v in self.answered.get(key, [])]
                    floor = max(known, default=0)  # answered before this read began: it must see it or later
                    at = time.monotonic() - self.began
                    response = client.get(self.rig.url(wid, key))
                    if response.status_code == 404 and not floor:
                        continue  # not written yet
                    version = version_of(response.content) if response.status_code == 200 else None
                    with self.lock:
                        self.reads += 1
                        if version is None:
                            self.violations.append(f"{at:.2f}s {wid} {key}: {response.status_code} "
                                                   f"{response.text[:200]}")
                        elif version < floor:
                            self.violations.append(f"{at:.2f}s {wid} {key}: version {version}, {floor} was "
                                                   "answered before")

    def run(self, seconds: float, during: list[tuple[float, object]]) -> None:
        """Load for seconds, calling each (at, action) at its time."""
        threads = [threading.Thread(target=self.writer, args=(f"k{i}", wid)) for i, wid in enumerate(IDS)]
        keys = [f"k{i}" for i in range(len(IDS))]
        threads += [threading.Thread(target=self.reader, args=(keys, wid)) for wid in IDS for _ in range(2)]
        began = self.began = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            for at, action in during:
                time.sleep(max(0.0, began + at - time.monotonic()))
                action()  # type: ignore[operator]
            time.sleep(max(0.0, began + seconds - time.monotonic()))
        finally:
            self.stop.set()
            for thread in threads:
                thread.join()


def _rejoined(worker: Worker, since: int) -> bool:
    return "reachable: joined" in worker.log()[since:]


def test_redis_killed_and_restarted_under_load_keeps_read_after_write(rig: Rig) -> None:
    load = Load(rig)
    marks = {wid: len(w.log()) for wid, w in rig.workers.items()}
    load.run(9.0, [(2.5, lambda: rig.redis.stop(signal.SIGKILL)), (5.5, rig.redis.start)])
    assert not load.violations, load.violations[:5]
    assert load.reads > 30 and sum(len(v) for v in load.answered.values()) > 10, (load.reads, load.answered)
    for wid, worker in rig.workers.items():
        log = worker.log()[marks[wid]:]
        assert log.count("Redis at") and "unreachable" in log, log[-2000:]  # one line says why
        deadline = time.monotonic() + 10
        while not _rejoined(worker, marks[wid]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _rejoined(worker, marks[wid]), worker.log()[-2000:]
        assert "Traceback" not in log
    # healed: metadata is trusted again, and a second read of a key through a worker asks the origin nothing
    key_url = rig.url("w1", "k0")
    auth = {"Authorization": "AWS tester:x"}
    first = httpx.get(key_url, headers=auth, timeout=30)
    rig.counting.reset()
    again = httpx.get(key_url, headers=auth, timeout=30)
    assert again.status_code == 200 and again.content == first.content
    assert rig.counting.requests() == []


def test_redis_slowed_keeps_reads_served_and_read_after_write(rig: Rig) -> None:
    load = Load(rig)
    rig.relay.delay_s = 0.2

    def unslow() -> None:
        rig.relay.delay_s = 0.0
    try:
        load.run(6.0, [(4.5, unslow)])
    finally:
        unslow()
    assert not load.violations, load.violations[:5]
    assert not load.failed_writes, load.failed_writes[:3]
    assert load.reads > 20 and sum(len(v) for v in load.answered.values()) > 5, (load.reads, load.answered)
