"""Workers killed with SIGKILL in a cluster behind nginx (three workers, Redis, moto; rig/cluster.py).

- the worker serving a large streamed GET, mid-stream: the client sees a body short of its Content-Length and the
  connection closed, never a wrong byte; the same GET through nginx succeeds; the worker restarted on the same
  cache directory serves the object whole (no half-written block is ever served);
- the worker a multipart upload began on, between parts: the upload goes on through another worker and completes;
  a CompleteMultipartUpload sent again (its answer lost) answers 200 with the same ETag.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import time

import pytest

from rig.cluster import Cluster
from tests.conftest import make_client
from tests.faults.conftest import whole

pytestmark = pytest.mark.slow

MiB = 1 << 20


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_worker_killed_mid_stream_is_a_detectable_short_body_and_a_retry_succeeds(cluster: Cluster) -> None:
    bucket = cluster.bucket("kill")
    data = os.urandom(48 * MiB)
    s3 = cluster.boto3()
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    victim = cluster.workers["w0"]
    conn = http.client.HTTPConnection("127.0.0.1", victim.port, timeout=60)
    conn.request("GET", f"/{bucket}/big", headers={"Authorization": "AWS tester:x"})
    response = conn.getresponse()
    assert response.status == 200 and int(response.getheader("content-length") or 0) == len(data)
    received = bytearray(response.read(4 * MiB))
    victim.stop(signal.SIGKILL)  # blocks it was filling are left half-written
    try:
        while chunk := response.read(MiB):
            received += chunk
    except (http.client.IncompleteRead, ConnectionError) as short:
        received += getattr(short, "partial", b"")
    conn.close()
    assert 4 * MiB <= len(received) < len(data)  # short of its Content-Length: the client can tell
    assert bytes(received) == data[:len(received)]  # and every byte it got is right
    began = time.monotonic()
    assert md5(s3.get_object(Bucket=bucket, Key="big")["Body"].read()) == md5(data)  # nginx passes it over
    assert time.monotonic() - began < 30
    whole(cluster)  # w0 again, on the cache directory it was killed over
    body = make_client(victim.url).get_object(Bucket=bucket, Key="big")["Body"].read()
    assert md5(body) == md5(data)
    assert "Traceback" not in victim.log().rpartition("s3cache serving")[2]


def test_multipart_upload_outlives_its_worker_and_a_retried_complete_answers_the_same_etag(cluster: Cluster) -> None:
    bucket = cluster.bucket("mpu")
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(MiB + 7)]
    first, second = cluster.workers["w1"], cluster.workers["w2"]
    s3_first, s3_second = make_client(first.url), make_client(second.url)
    upload = s3_first.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [s3_first.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=parts[0])["ETag"]]
    first.stop(signal.SIGKILL)
    try:
        for number, body in enumerate(parts[1:], start=2):
            etags.append(s3_second.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=number,
                                               Body=body)["ETag"])
        listed = s3_second.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
        assert [p["ETag"] for p in listed] == etags
        finished = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]}
        done = s3_second.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                                   MultipartUpload=finished)
        again = cluster.boto3().complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                                          MultipartUpload=finished)  # its answer was lost
        assert again["ETag"] == done["ETag"]
        assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
        expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
        assert done["ETag"].strip('"') == expected
        body = cluster.boto3().get_object(Bucket=bucket, Key="mp")["Body"].read()
        assert md5(body) == md5(b"".join(parts))
    finally:
        whole(cluster)
