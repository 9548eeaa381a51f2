"""A faulty origin, through a real worker over moto behind the fault-injecting relay (rig/faults.py).

- S3 errors (500, 503, SlowDown), resets mid-body and bodies short of their Content-Length on a fraction of the
  origin's answers: every read is whole and right (MD5s), the broken bodies resumed from the byte they reached,
  pinned by If-Match; afterwards every block is cached (nothing of a failed fetch kept in its place).
- an origin that always fails: a clear S3 error at once, the worker up, and nothing cached.
- the object replaced while it is read: the reader gets the version it began whole or a short body of it, never a
  byte of the other; the next read gets the new version whole.
- the object replaced before a read's first byte (its known version's blocks refused by If-Match): the current
  version is opened and served whole (before: 503 ServiceUnavailable for a small object, a 200 cut at byte 0 for
  a streamed one).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import time

import pytest
from botocore.exceptions import ClientError

from rig.faults import Faults
from rig.origin import CountingProxy, MotoOrigin
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker
from tests.faults.conftest import seed

MiB = 1 << 20
RETRIES = {"S3CACHE_ORIGIN_RETRIES": "8"}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _clean_log(log: str) -> None:
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def test_errors_resets_and_short_bodies_are_retried_and_resumed(moto_origin: MotoOrigin, relay: CountingProxy,
                                                                start_worker: StartWorker) -> None:
    objects = {f"obj{i}": os.urandom(6 * MiB + 12345) for i in range(4)}
    bucket = seed(moto_origin, objects)
    relay.faults = Faults(error_rate=0.15, reset_rate=0.15, short_rate=0.15, seed=10)
    worker = start_worker(relay.url, block_size="1M", env=RETRIES, metadata_ttl=600.0)
    s3 = make_client(worker.url)
    for key, data in objects.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) == len(data) and md5(body) == md5(data), key
    injected = relay.faults.counts()
    assert injected.get("error", 0) and injected.get("reset", 0) and injected.get("short", 0), injected
    # every broken body was asked for again from where it broke: a Range that starts inside a block, pinned
    resumed = [s for s in relay.object_gets() if s.range and int(s.range[6:].split("-")[0]) % MiB]
    assert len(resumed) >= injected["reset"] + injected["short"] - 2, (resumed, injected)  # (a cut read-ahead
    assert all(s.if_match for s in resumed)  # may be abandoned by its reader instead)
    relay.faults = Faults()
    relay.reset()
    for key, data in objects.items():  # every block was cached whole: no origin read, the same bytes
        assert md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == md5(data)
    assert relay.object_gets() == []
    assert "origin request failed" in worker.log()  # each retry says why, as a warning
    _clean_log(worker.log())


def test_an_origin_that_always_fails_is_a_clear_error_and_nothing_is_cached(
        moto_origin: MotoOrigin, relay: CountingProxy, start_worker: StartWorker) -> None:
    data = os.urandom(3 * MiB)
    bucket = seed(moto_origin, {"k": data})
    worker = start_worker(relay.url, block_size="1M", env={"S3CACHE_ORIGIN_RETRIES": "2"})
    s3 = make_client(worker.url, retries={"total_max_attempts": 1})  # what the worker answers, not retried
    relay.faults = Faults(error_rate=1.0, errors=((503, "SlowDown"),))
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert len(relay.object_gets()) == 3  # the request and its two retries
    relay.faults = Faults(reset_rate=1.0)  # every body breaks halfway: the budget runs out before a block is whole
    relay.reset()
    received = b""
    try:
        received = s3.get_object(Bucket=bucket, Key="k")["Body"].read()
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ServiceUnavailable"
    except Exception:  # noqa: BLE001 - a stream cut after its headers: urllib3's IncompleteRead / ProtocolError
        pass
    assert received == b""  # nothing whole could be served
    relay.faults = Faults()
    relay.reset()
    assert md5(s3.get_object(Bucket=bucket, Key="k")["Body"].read()) == md5(data)
    # Blocks 1 and 2 never came whole (each resumption broke off halfway too): nothing of them was kept, so the
    # origin is read again up to the end of each (block 0 may have come whole before the first reset, halfway
    # through the 3 MiB answer, and then stays cached; a fill still in flight may have got part of a block).
    ends = {int((g.range or "bytes=0-").rsplit("-", 1)[1] or 3 * MiB - 1) for g in relay.object_gets()}
    assert {2 * MiB - 1, 3 * MiB - 1} <= ends, ends
    _clean_log(worker.log())


def test_an_object_replaced_under_a_read_is_one_version_whole_or_cut(
        moto_origin: MotoOrigin, start_worker: StartWorker) -> None:
    old, new = os.urandom(8 * MiB), os.urandom(8 * MiB)
    bucket = seed(moto_origin, {"k": old})
    # 1 MiB/s a connection, one block read ahead: 4 s for the object, time to replace it
    slow = CountingProxy(moto_origin.port, rate_bytes_s=MiB).start()
    try:
        worker = start_worker(slow.url, block_size="1M", metadata_ttl=1.0, env={
            "S3CACHE_CACHE_READAHEAD_BLOCKS": "1", "S3CACHE_CACHE_READAHEAD_MAX_BLOCKS": "1"})
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=60)
        conn.request("GET", f"/{bucket}/k", headers={"Authorization": "AWS tester:x"})
        response = conn.getresponse()
        assert response.status == 200 and int(response.getheader("content-length") or 0) == len(old)
        received = bytearray(response.read(MiB))
        replacer = threading.Thread(target=lambda: make_client(moto_origin.url).put_object(
            Bucket=bucket, Key="k", Body=new))
        replacer.start()
        replacer.join()
        try:
            while chunk := response.read(MiB):
                received += chunk
        except http.client.IncompleteRead as short:
            received += short.partial
        conn.close()
        assert MiB <= len(received) < len(old)  # cut: the blocks not yet fetched are of a version gone
        assert bytes(received) == old[:len(received)]  # the version it began, never a byte of the other
        assert "cut after its headers" in worker.log()
        time.sleep(1.2)  # the metadata TTL: the change at the origin is now seen
        body = make_client(worker.url).get_object(Bucket=bucket, Key="k")["Body"].read()
        assert md5(body) == md5(new)
    finally:
        slow.stop()


@pytest.mark.parametrize("size", [100_000, 3 * MiB], ids=["small", "streamed"])
def test_a_version_gone_before_the_first_byte_is_opened_anew(
        moto_origin: MotoOrigin, relay: CountingProxy, start_worker: StartWorker, size: int) -> None:
    old, new = os.urandom(size), os.urandom(size + 1)
    bucket = seed(moto_origin, {"k": old})
    worker = start_worker(relay.url, block_size="1M", metadata_ttl=600.0)
    s3 = make_client(worker.url, retries={"total_max_attempts": 1})
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == size  # the version known, no block cached
    make_client(moto_origin.url).put_object(Bucket=bucket, Key="k", Body=new)  # replaced behind s3cache's back
    response = s3.get_object(Bucket=bucket, Key="k")  # its blocks are refused by If-Match: the current one is read
    assert response["ContentLength"] == len(new) and md5(response["Body"].read()) == md5(new)
    assert f'"{md5(old)}"' in {s.if_match for s in relay.object_gets()}  # the version known was asked for first
