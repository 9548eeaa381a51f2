"""The wire forms of writes, sent raw (httpx or a socket) to a real worker, and what the worker makes of them."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from awscrt import checksums as crt
from botocore.exceptions import ClientError

from rig.processes import Worker
from tests.conftest import make_client

AUTH = ("AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + "0" * 64)
SIG = "a" * 64


@pytest.fixture(scope="module")
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=30) as client:
        yield client


def xml_code(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    code = root.findtext("Code")
    assert code is not None
    return code


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def crc32c(data: bytes) -> str:
    return b64(crt.crc32c(data).to_bytes(4, "big"))


def sha256_b64(data: bytes) -> str:
    return b64(hashlib.sha256(data).digest())


def leftovers(data_dir: Path, bucket: str) -> list[str]:
    tmp = data_dir / bucket / ".s3cache" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return bool(exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404)
    return False


def stored(s3: Any, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    got = s3.get_object(Bucket=bucket, Key=key)
    return got["Body"].read(), got["ResponseMetadata"]["HTTPHeaders"]


# ---- Content-MD5 ---------------------------------------------------------------------------------


def test_content_md5(s3: Any, http: httpx.Client, bucket: str, data_dir: Path) -> None:
    data = os.urandom(10_000)
    good = b64(hashlib.md5(data).digest())
    response = http.put(f"/{bucket}/k", content=data, headers={"content-md5": good})
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert stored(s3, bucket, "k")[0] == data

    wrong = b64(hashlib.md5(b"something else").digest())
    for key in ("k", "fresh"):
        response = http.put(f"/{bucket}/{key}", content=os.urandom(10_000), headers={"content-md5": wrong})
        assert response.status_code == 400
        assert xml_code(response) == "BadDigest"
    assert stored(s3, bucket, "k")[0] == data  # the previous version is intact
    assert absent(s3, bucket, "fresh")  # and nothing was created where there was nothing
    assert leftovers(data_dir, bucket) == []


@pytest.mark.parametrize("value", ["not base64!", "AAAA", b64(b"x" * 17)])
def test_content_md5_invalid(s3: Any, http: httpx.Client, bucket: str, value: str) -> None:
    response = http.put(f"/{bucket}/k", content=b"data", headers={"content-md5": value})
    assert response.status_code == 400
    assert xml_code(response) == "InvalidDigest"
    assert absent(s3, bucket, "k")


# ---- Expect: 100-continue ------------------------------------------------------------------------


def _read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[int, dict[str, str], bytes, bytes]:
    """One HTTP/1.1 response with a Content-Length body -> (status, headers, body, bytes read past it)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def test_expect_100_continue(s3: Any, worker: Worker, bucket: str) -> None:
    data = os.urandom(200_000)
    head = (f"PUT /{bucket}/expect HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
            f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(head.encode())
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(1024)
            assert chunk, "closed before 100 Continue"
            interim += chunk
        line, _, rest = interim.partition(b"\r\n\r\n")
        assert line == b"HTTP/1.1 100 Continue"
        assert rest == b""  # nothing final before the body was sent
        sock.sendall(data)
        status, headers, _, _ = _read_response(sock, rest)
        assert status == 200
        assert headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert stored(s3, bucket, "expect")[0] == data


@pytest.mark.not_on_origin(reason=(
    "only the origin knows the bucket is missing: s3cache invites the body (100 Continue) and "
    "forwards the PUT, rather than spend a HeadBucket on every write"
))
def test_expect_100_continue_refused_closes(worker: Worker, bucket: str) -> None:
    """A final answer before 100 Continue: no body was invited, so the connection cannot be reused."""
    head = ("PUT /no-such-bucket-here/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
            "Expect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(head.encode())
        status, headers, body, rest = _read_response(sock)
        assert status == 404
        assert b"<Code>NoSuchBucket</Code>" in body
        assert headers.get("connection", "").lower() == "close"
        tail = rest
        while chunk := sock.recv(65536):
            tail += chunk
        assert tail == b""  # closed by the server, with nothing after the answer


def test_boto3_expect_refusal_keeps_client_working(s3: Any, bucket: str) -> None:
    """boto3 sends Expect: 100-continue on PutObject; a refused one must not poison the pooled connection."""
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    for _ in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
        assert exc.value.response["Error"]["Code"] == "PreconditionFailed"
        assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


# ---- aws-chunked ---------------------------------------------------------------------------------


def signed_chunks(data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += f"{len(piece):x};chunk-signature={SIG}\r\n".encode() + piece + b"\r\n"
    return out + f"0;chunk-signature={SIG}\r\n\r\n".encode()


def trailer_chunks(data: bytes, size: int, trailer: str) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + f"0\r\n{trailer}\r\n\r\n".encode()


@pytest.mark.parametrize("size", [0, 1, 65536, 300_000])
@pytest.mark.parametrize("encoding", ["aws-chunked", "aws-chunked, gzip"])
def test_aws_chunked_signed(s3: Any, http: httpx.Client, bucket: str, size: int, encoding: str) -> None:
    data = os.urandom(size)
    response = http.put(f"/{bucket}/signed", content=signed_chunks(data, 65536), headers={
        "authorization": AUTH, "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding": encoding, "x-amz-decoded-content-length": str(size)})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    body, headers = stored(s3, bucket, "signed")
    assert body == data
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert headers.get("content-encoding") == ("gzip" if "gzip" in encoding else None)
    assert headers["content-length"] == str(size)


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_aws_chunked_unsigned_trailer(s3: Any, http: httpx.Client, bucket: str, transfer: str) -> None:
    data = os.urandom(150_000)
    encoded = trailer_chunks(data, 40_000, f"x-amz-checksum-crc32:{crc32(data)}")
    content: bytes | Iterator[bytes] = encoded
    if transfer == "chunked":  # as the AWS SDK for C++ sends it: Transfer-Encoding: chunked around aws-chunked
        content = iter([encoded[i:i + 7777] for i in range(0, len(encoded), 7777)])
    response = http.put(f"/{bucket}/trailer", content=content, headers={
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content-encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(data))})
    assert response.status_code == 200, response.text
    assert response.headers["x-amz-checksum-crc32"] == crc32(data)
    body, headers = stored(s3, bucket, "trailer")
    assert body == data
    assert "content-encoding" not in headers
    got = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32(data)
    assert got["Body"].read() == data


def test_aws_chunked_wrong_trailer(s3: Any, http: httpx.Client, bucket: str, data_dir: Path) -> None:
    data = os.urandom(100_000)
    response = http.put(f"/{bucket}/bad", content=trailer_chunks(data, 30_000, f"x-amz-checksum-crc32:{crc32(b'x')}"),
                        headers={"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                 "content-encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                                 "x-amz-decoded-content-length": str(len(data))})
    assert response.status_code == 400
    assert xml_code(response) == "BadDigest"
    assert absent(s3, bucket, "bad")
    assert leftovers(data_dir, bucket) == []


def test_aws_chunked_truncated_framing(s3: Any, http: httpx.Client, bucket: str) -> None:
    data = os.urandom(1000)
    encoded = signed_chunks(data, 400)[:-40]  # the final chunk never comes
    response = http.put(f"/{bucket}/cut", content=encoded, headers={
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "1000"})
    assert response.status_code == 400
    assert xml_code(response) == "IncompleteBody"
    assert absent(s3, bucket, "cut")


# ---- x-amz-checksum-* headers --------------------------------------------------------------------


CHECKSUMS = {"crc32": crc32, "crc32c": crc32c, "sha256": sha256_b64}


@pytest.mark.parametrize("algorithm", sorted(CHECKSUMS))
def test_checksum_headers(s3: Any, http: httpx.Client, bucket: str, data_dir: Path, algorithm: str) -> None:
    data = os.urandom(70_000)
    value = CHECKSUMS[algorithm](data)
    header = f"x-amz-checksum-{algorithm}"
    response = http.put(f"/{bucket}/sum", content=data, headers={header: value})
    assert response.status_code == 200
    assert response.headers[header] == value
    raw = http.get(f"/{bucket}/sum", headers={"x-amz-checksum-mode": "ENABLED"})
    assert raw.content == data
    assert raw.headers[header] == value
    assert header not in http.get(f"/{bucket}/sum").headers  # only when asked for
    got = s3.get_object(Bucket=bucket, Key="sum", ChecksumMode="ENABLED")  # boto3 validates it while reading
    assert got["Checksum" + algorithm.upper()] == value
    assert got["Body"].read() == data

    wrong = CHECKSUMS[algorithm](b"other bytes")
    for key in ("sum", "fresh"):
        response = http.put(f"/{bucket}/{key}", content=os.urandom(70_000), headers={header: wrong})
        assert response.status_code == 400
        assert xml_code(response) == "BadDigest"
    assert stored(s3, bucket, "sum")[0] == data
    assert absent(s3, bucket, "fresh")
    assert leftovers(data_dir, bucket) == []


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256"])
def test_boto3_checksum_algorithm(s3: Any, bucket: str, algorithm: str) -> None:
    data = os.urandom(4096)
    put = s3.put_object(Bucket=bucket, Key="b", Body=data, ChecksumAlgorithm=algorithm)
    expected = CHECKSUMS[algorithm.lower()](data)
    assert put["Checksum" + algorithm] == expected
    got = s3.get_object(Bucket=bucket, Key="b", ChecksumMode="ENABLED")
    assert got["Checksum" + algorithm] == expected
    assert got["Body"].read() == data


def test_content_sha256_mismatch(s3: Any, http: httpx.Client, bucket: str) -> None:
    data = b"signed payload"
    good = hashlib.sha256(data).hexdigest()
    ok = http.put(f"/{bucket}/sha", content=data, headers={"authorization": AUTH, "x-amz-content-sha256": good})
    assert ok.status_code == 200
    response = http.put(f"/{bucket}/sha", content=b"tampered", headers={"authorization": AUTH,
                                                                        "x-amz-content-sha256": good})
    assert response.status_code == 400
    assert xml_code(response) == "XAmzContentSHA256Mismatch"
    assert stored(s3, bucket, "sha")[0] == data
    unsigned = http.put(f"/{bucket}/u", content=b"any", headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert unsigned.status_code == 200


# ---- limits and broken bodies --------------------------------------------------------------------


def test_metadata_limit(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="fits", Body=b"x", Metadata={"k": "v" * 2047})  # 2048 bytes: at the limit
    assert s3.head_object(Bucket=bucket, Key="fits")["Metadata"] == {"k": "v" * 2047}
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={"k": "v" * 2048})
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.value.response["Error"]["Code"] == "MetadataTooLarge"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="big", Body=b"x", Metadata={f"m{i}": "v" * 200 for i in range(11)})
    assert exc.value.response["Error"]["Code"] == "MetadataTooLarge"
    assert absent(s3, bucket, "big")


@pytest.mark.parametrize("existing", [False, True])
def test_body_cut_short(s3: Any, worker: Worker, bucket: str, data_dir: Path, existing: bool) -> None:
    if existing:
        s3.put_object(Bucket=bucket, Key="short", Body=b"previous")
    head = f"PUT /{bucket}/short HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(head.encode() + os.urandom(30_000))
        time.sleep(0.2)  # let the worker start writing before the client vanishes
    deadline = time.monotonic() + 5
    while leftovers(data_dir, bucket) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(data_dir, bucket) == []
    if existing:
        assert stored(s3, bucket, "short")[0] == b"previous"
    else:
        assert absent(s3, bucket, "short")
    # The worker keeps serving.
    s3.put_object(Bucket=bucket, Key="after", Body=b"still here")
    assert stored(s3, bucket, "after")[0] == b"still here"


# ---- routing refusals and auth -------------------------------------------------------------------


# Sub-resources s3cache serves none of (acl, policy, cors and the other probes answer as S3 does: test_s3_compat.py).
@pytest.mark.parametrize("subresource", ["logging", "notification", "object-lock"])
@pytest.mark.parametrize("level", ["bucket", "object"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_subresource(s3: Any, http: httpx.Client, bucket: str, subresource: str, level: str,
                             method: str) -> None:
    s3.put_object(Bucket=bucket, Key="obj", Body=b"untouched")
    path = f"/{bucket}" + ("/obj" if level == "object" else "")
    response = http.request(method, path, params={subresource: ""}, content=b"<x/>" if method == "PUT" else None)
    assert response.status_code == 501
    assert xml_code(response) == "NotImplemented"
    assert stored(s3, bucket, "obj")[0] == b"untouched"


def test_post_on_object_is_method_not_allowed(s3: Any, http: httpx.Client, bucket: str) -> None:
    response = http.post(f"/{bucket}/obj", content=b"data")
    assert response.status_code == 405
    assert xml_code(response) == "MethodNotAllowed"
    assert absent(s3, bucket, "obj")


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA256 Credential=bad",
    "AWS4-HMAC-SHA256 Credential=bad, SignedHeaders=host, Signature=abc",
    "AWS4-HMAC-SHA256 SignedHeaders=host",
    "AWS nocolon",
])
def test_malformed_authorization(http: httpx.Client, bucket: str, authorization: str) -> None:
    response = http.get(f"/{bucket}", params={"list-type": "2"}, headers={"authorization": authorization})
    assert response.status_code == 400
    assert xml_code(response) == "AuthorizationHeaderMalformed"


def _logged(worker: Worker, needle: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if needle in worker.log():
            return True
        time.sleep(0.05)
    return False


def test_simple_auth_users_in_access_log(s3: Any, worker: Worker, http: httpx.Client, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="who", Body=b"me")
    tag = bucket[-6:]

    sigv4 = make_client(worker.url, f"sigv4-{tag}")
    assert sigv4.get_object(Bucket=bucket, Key="who")["Body"].read() == b"me"

    url = make_client(worker.url, f"presigned-{tag}", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "who"}, ExpiresIn=300)
    assert "X-Amz-Credential" in url
    presigned = httpx.get(url)
    assert presigned.status_code == 200 and presigned.content == b"me"

    sigv2 = http.get(f"/{bucket}/who", headers={"authorization": f"AWS sigv2-{tag}:c2lnbmF0dXJl"})
    assert sigv2.status_code == 200 and sigv2.content == b"me"

    # boto3's default presigning of S3 URLs is the SigV2 query form (AWSAccessKeyId=...).
    url = make_client(worker.url, f"v2query-{tag}").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "who"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url
    sigv2_query = httpx.get(url)
    assert sigv2_query.status_code == 200 and sigv2_query.content == b"me"

    anonymous = http.head(f"/{bucket}/who")
    assert anonymous.status_code == 200

    for user in ("sigv4", "presigned", "sigv2", "v2query"):
        assert _logged(worker, f"{user}-{tag} GetObject {bucket} 'who' 200 2 "), user
    assert _logged(worker, f"anonymous HeadObject {bucket} 'who' 200 0 ")
