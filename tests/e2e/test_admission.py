"""Admission control through a real worker: saturated, it answers 503 SlowDown with Retry-After at once instead of
queueing without bound, the SDKs retry that, and the worker is fine afterwards.

A slow origin (rig.origin.CountingProxy with latency_s) keeps the admitted requests in flight while the others arrive.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from rig.origin import CountingProxy, MotoOrigin
from rig.processes import scrape
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker

KIB = 1 << 10
SLOW_DOWN_MESSAGE = "Please reduce your request rate."


@pytest.fixture
def slow_origin(moto_origin: MotoOrigin) -> Iterator[CountingProxy]:
    proxy = CountingProxy(moto_origin.port, latency_s=0.5).start()
    yield proxy
    proxy.stop()


Answer = tuple[int, dict[str, str], bytes]


def at_once(port: int, paths: list[str]) -> list[Answer]:
    """One GET per path, each on its own connection, all sent together (a barrier): (status, headers, body)."""
    ready = threading.Barrier(len(paths))
    answers: dict[int, Answer] = {}

    def one(index: int, path: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.connect()
            ready.wait()
            conn.request("GET", path)
            response = conn.getresponse()
            answers[index] = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i, path)) for i, path in enumerate(paths)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answers[i] for i in range(len(paths))]


def assert_slow_down(answer: Answer, resource: str) -> None:
    status, headers, body = answer
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    assert (root.findtext("Code"), root.findtext("Message"), root.findtext("Resource")) == \
        ("SlowDown", SLOW_DOWN_MESSAGE, resource)
    assert root.findtext("RequestId")


def objects(origin_s3: Any, bucket: str, count: int, size: int) -> dict[str, bytes]:
    made = {f"k{i:02d}-{uuid.uuid4().hex[:6]}": os.urandom(size) for i in range(count)}
    for key, data in made.items():
        origin_s3.put_object(Bucket=bucket, Key=key, Body=data)
    return made


def refused(url: str, reason: str) -> float:
    return scrape(url).get(("s3cache_requests_refused_total", (("reason", reason),)), 0.0)


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_past_max_inflight_requests_is_slow_down_then_sdk_retries_read_everything(
        slow_origin: CountingProxy, origin_s3: Any, origin_bucket: str, start_worker: StartWorker) -> None:
    w = start_worker(slow_origin.url, env={"S3CACHE_SERVER_MAX_INFLIGHT_REQUESTS": "4"})
    cold = objects(origin_s3, origin_bucket, 16, 100 * KIB)
    keys = list(cold)

    # 16 cold GETs at once, each held 0.5 s by the origin: 4 are answered, the rest refused at once
    answers = at_once(w.port, [f"/{origin_bucket}/{key}" for key in keys])
    ok = [(key, a) for key, a in zip(keys, answers, strict=True) if a[0] == 200]
    slowed = [(key, a) for key, a in zip(keys, answers, strict=True) if a[0] != 200]
    assert 1 <= len(ok) <= 8, [a[0] for a in answers]  # 4 at a time (one finishing early may let a 5th in)
    assert len(slowed) >= 8
    for key, answer in ok:
        assert answer[2] == cold[key]
    for key, answer in slowed:
        assert_slow_down(answer, f"/{origin_bucket}/{key}")
    assert refused(w.url, "inflight") == len(slowed)

    # nothing is left counted in flight: the worker answers normally afterwards, every object right
    assert httpx.get(f"{w.url}/_s3cache/healthz", timeout=10).json() == {"status": "ok"}
    s3 = make_client(w.url)
    for key, data in cold.items():
        assert s3.get_object(Bucket=origin_bucket, Key=key)["Body"].read() == data
    assert [a[0] for a in at_once(w.port, [f"/{origin_bucket}/{key}" for key in keys[:4]])] == [200] * 4

    # boto3 with its standard retries: 16 threads on 16 new cold objects all get their bytes in the end
    fresh = objects(origin_s3, origin_bucket, 16, 100 * KIB)
    before = refused(w.url, "inflight")
    got: dict[str, bytes] = {}
    errors: list[BaseException] = []
    ready = threading.Barrier(len(fresh))

    def read(key: str) -> None:
        client = make_client(w.url, retries={"mode": "standard", "max_attempts": 10})
        try:
            ready.wait()
            got[key] = client.get_object(Bucket=origin_bucket, Key=key)["Body"].read()
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=read, args=(key,)) for key in fresh]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert got == fresh
    assert refused(w.url, "inflight") > before  # some of them were refused, and retried


def test_past_max_waiting_fills_is_slow_down(slow_origin: CountingProxy, origin_s3: Any, origin_bucket: str,
                                             start_worker: StartWorker) -> None:
    # one fill slot and 64 KiB blocks: a cold whole-object GET queues its read-ahead fills behind that slot
    w = start_worker(slow_origin.url, block_size="64K",
                     env={"S3CACHE_CACHE_MAX_FILLS": "1", "S3CACHE_CACHE_MAX_WAITING_FILLS": "2",
                          "S3CACHE_CACHE_READAHEAD_BLOCKS": "3"})
    slow_origin.latency_s = 0.2
    cold = objects(origin_s3, origin_bucket, 3, 256 * KIB)  # 4 blocks each
    results: dict[str, Answer] = {}

    def read(key: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=60)
        try:
            conn.request("GET", f"/{origin_bucket}/{key}")
            response = conn.getresponse()
            results[key] = (response.status, dict(response.getheaders()), response.read())
        finally:
            conn.close()

    threads = [threading.Thread(target=read, args=(key,)) for key in cold]
    for thread in threads:
        thread.start()
    waiting = ("s3cache_fills_waiting", ())
    try:
        assert wait_until(lambda: scrape(w.url).get(waiting, 0.0) > 2), "the fills never queued"
        answer = httpx.get(f"{w.url}/{origin_bucket}/any-key", timeout=10)
        assert_slow_down((answer.status_code, dict(answer.headers), answer.content), f"/{origin_bucket}/any-key")
        assert refused(w.url, "waiting_fills") >= 1
    finally:
        for thread in threads:
            thread.join()
    # the requests admitted before were served whole; once the queue drains the worker answers again
    assert {key: (status, body) for key, (status, _, body) in results.items()} == \
        {key: (200, data) for key, data in cold.items()}
    assert wait_until(lambda: scrape(w.url).get(waiting, 0.0) == 0)
    assert make_client(w.url).get_object(Bucket=origin_bucket, Key=next(iter(cold)))["Body"].read() == \
        next(iter(cold.values()))
