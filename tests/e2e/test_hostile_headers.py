"""Request header sections are bounded as S3 bounds them: 8 KiB of names and values, 100 headers.

Past either bound the answer is ``400 RequestHeaderSectionTooLarge``; a head far past it (64 MiB of one header,
or thousands of small ones) is refused after the first few KiB, before the worker has read it, and the worker's
memory does not grow with it.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from rig.processes import Worker

TOO_LARGE = "RequestHeaderSectionTooLarge"
MESSAGE = "Your request header section exceeds the maximum allowed size."


def _rss_bytes(worker: Worker) -> int:
    assert worker.proc is not None
    for line in Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert f"<Code>{TOO_LARGE}</Code>" in response.text and MESSAGE in response.text


def test_metadata_past_the_header_section_is_refused(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={f"m{i}": "v" * 1000 for i in range(9)})
    assert info.value.response["Error"]["Code"] == TOO_LARGE
    assert info.value.response["Error"]["Message"] == MESSAGE
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_the_most_metadata_s3_takes_still_fits(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """2 KB of user metadata (S3's limit) with every header boto3 adds to a signed, checksummed PUT."""
    metadata = {"a" * 8: "v" * 1000, "b" * 8: "w" * 1000, "c": "x" * 20}
    s3.put_object(Bucket=bucket, Key="k" * 200, Body=b"x", Metadata=metadata, ContentType="text/plain",
                  Tagging="&".join(f"t{i}={'v' * 50}" for i in range(10)), CacheControl="no-cache")
    assert s3.head_object(Bucket=bucket, Key="k" * 200)["Metadata"] == metadata


def test_one_long_header_is_refused(worker: Worker, bucket: str) -> None:
    _assert_too_large(httpx.get(f"{worker.url}/{bucket}/k", headers={"x-long": "a" * 8200}))
    assert httpx.get(f"{worker.url}/{bucket}/k", headers={"x-long": "a" * 7000}).status_code == 404


def test_too_many_headers_are_refused(worker: Worker, bucket: str) -> None:
    _assert_too_large(httpx.get(f"{worker.url}/{bucket}/k", headers={f"x-h{i}": "1" for i in range(101)}))
    assert httpx.get(f"{worker.url}/{bucket}/k", headers={f"x-h{i}": "1" for i in range(90)}).status_code == 404


def _send_huge_head(url: str, head: bytes, line: bytes, total_bytes: int) -> tuple[bytes, int, float]:
    """Send head then line repeatedly up to total_bytes; return what came back, how much was sent, how long."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    received = bytearray()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                received.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    started = time.monotonic()
    sent = 0
    block = line * max(1, (1 << 20) // len(line))
    try:
        sock.sendall(head)
        while sent < total_bytes:
            sock.sendall(block)
            sent += len(block)
    except OSError:  # refused and closed: the rest is never read
        pass
    elapsed = time.monotonic() - started
    reader.join(timeout=30)
    sock.close()
    return bytes(received), sent, elapsed


@pytest.mark.parametrize("shape", ["one 64 MiB header", "64 MiB of small headers"])
def test_a_64_mib_head_is_refused_unread_and_memory_stays_bounded(worker: Worker, shape: str) -> None:
    before = _rss_bytes(worker)
    head = f"GET /{uuid.uuid4().hex[:12]}/k HTTP/1.1\r\nHost: x\r\n".encode()
    if shape == "one 64 MiB header":
        head += b"x-huge: "
        line = b"a" * 4096
    else:
        line = b"x-small: 1\r\n"
    received, sent, elapsed = _send_huge_head(worker.url, head, line, 64 << 20)
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert f"<Code>{TOO_LARGE}</Code>".encode() in received
    assert sent < 64 << 20, "the worker read the whole 64 MiB head"
    assert elapsed < 10
    grown = _rss_bytes(worker) - before
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB"
    assert httpx.get(f"{worker.url}/_s3cache/healthz").status_code == 200
