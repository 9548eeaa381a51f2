"""A response stream that fails after its headers went out is cut, and logged as one warning line naming the
request id: no "Exception in ASGI application", no traceback. Two real causes, each through a real worker:
the object's file shrinks while it is read (directory), and the origin breaks off mid-object (S3 origin).
"""

from __future__ import annotations

import http.client
import os
import time
import uuid
from pathlib import Path

import pytest

from rig.origin import CountingProxy, MotoOrigin
from rig.processes import Worker
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker


def _read_cut(worker: Worker, path: str, before_rest: object) -> tuple[str, int, int]:
    """GET path, read its headers and a first MiB, call before_rest(), then read on until the worker cuts it:
    (request id, Content-Length, bytes received)."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=60)
    conn.request("GET", path, headers={"Authorization": "AWS tester:x"})
    response = conn.getresponse()
    assert response.status == 200
    request_id = response.getheader("x-amz-request-id") or ""
    length = int(response.getheader("content-length") or 0)
    received = len(response.read(1 << 20))
    before_rest()  # type: ignore[operator]
    try:
        while chunk := response.read(1 << 20):
            received += len(chunk)
    except http.client.IncompleteRead as short:
        received += len(short.partial)
    conn.close()
    return request_id, length, received


def _one_warning(worker: Worker, request_id: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = worker.log()
        lines = [line for line in log.splitlines() if request_id in line and "cut after its headers" in line]
        if lines:
            break
        time.sleep(0.1)
    assert len(lines) == 1, log[-3000:]
    assert " WARNING " in lines[0]
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
    assert " ERROR " not in log, log[-3000:]
    return lines[0]


def test_object_shrinking_under_a_read(tmp_path: Path) -> None:
    worker = Worker(["--data", str(tmp_path / "data")], tmp_path).start()
    try:
        s3 = make_client(worker.url)
        bucket = f"t-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(64 << 20))
        path = tmp_path / "data" / bucket / "big"
        request_id, length, received = _read_cut(worker, f"/{bucket}/big", lambda: os.truncate(path, 2 << 20))
        assert received < length == 64 << 20
        assert "changed size" in _one_warning(worker, request_id)
        assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == 2 << 20  # the worker serves on
    finally:
        worker.stop()


@pytest.mark.slow
def test_origin_breaking_off_mid_object(moto_origin: MotoOrigin, start_worker: StartWorker) -> None:
    origin_s3 = make_client(moto_origin.url)
    bucket = f"o-{uuid.uuid4().hex[:12]}"
    origin_s3.create_bucket(Bucket=bucket)
    origin_s3.put_object(Bucket=bucket, Key="big", Body=os.urandom(48 << 20))
    slow = CountingProxy(moto_origin.port, rate_bytes_s=4 << 20).start()  # 12 s for the object: time to cut it
    try:
        worker = start_worker(slow.url, block_size="1M")
        request_id, length, received = _read_cut(worker, f"/{bucket}/big", slow.stop)
        assert received < length == 48 << 20
        _one_warning(worker, request_id)
    finally:
        slow.stop()
