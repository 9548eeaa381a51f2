"""The embedded default answers real S3 clients over a real socket."""

from __future__ import annotations

import hashlib

import httpx


def test_put_get_roundtrip(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = b"hello s3cache\n" * 1000
    put = s3.put_object(Bucket=bucket, Key="greeting.txt", Body=body, ContentType="text/plain")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="greeting.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["ETag"] == put["ETag"]


def test_probe_endpoints(worker) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(worker.url + "/_s3cache/healthz").json() == {"status": "ok"}
    assert httpx.get(worker.url + "/_s3cache/readyz").json() == {"status": "ready"}
