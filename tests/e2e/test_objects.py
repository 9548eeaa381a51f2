"""Object operations through a real worker: bytes, headers, ranges, conditions, deletes and copies."""

from __future__ import annotations

import hashlib
import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from rig.processes import Worker

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
SIZES = [0, 1, 4 << 10, 100 << 10, 300 << 10, 5 << 20]  # 100 KiB: one read, handed over as a bytearray


@pytest.fixture(scope="module")
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=30) as client:
        yield client


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def xml_code(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    code = root.findtext("Code")
    assert code is not None
    return code


def put(s3: Any, bucket: str, key: str, data: bytes, **kwargs: Any) -> str:
    etag: str = s3.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)["ETag"]
    return etag


# ---- bytes and ETags -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
def test_put_get_head_roundtrip(s3: Any, bucket: str, size: int) -> None:
    data = os.urandom(size)
    key = f"obj-{size}"
    etag = put(s3, bucket, key, data)
    assert etag == md5_etag(data)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"] == etag
    assert head["ContentLength"] == size
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ETag"] == etag
    assert got["ContentLength"] == size
    assert got["Body"].read() == data
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [(key, etag, size)]


def test_overwrite_replaces_bytes_and_etag(s3: Any, bucket: str) -> None:
    first, second = os.urandom(1000), os.urandom(10)
    put(s3, bucket, "k", first)
    etag = put(s3, bucket, "k", second)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == second
    assert got["ETag"] == etag == md5_etag(second)


def test_stored_headers_and_metadata_returned(s3: Any, bucket: str) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    data = b"payload"
    put(s3, bucket, "h", data, ContentType="text/x-test; charset=utf-8", CacheControl="max-age=60, private",
        ContentDisposition='attachment; filename="a b.txt"', ContentEncoding="identity", ContentLanguage="de-CH",
        Expires=expires, Metadata={"color": "blue", "Mixed-Case": "Value 1"})
    for call in (s3.head_object, s3.get_object):
        response = call(Bucket=bucket, Key="h")
        headers = response["ResponseMetadata"]["HTTPHeaders"]
        assert response["ContentType"] == "text/x-test; charset=utf-8"
        assert response["CacheControl"] == "max-age=60, private"
        assert response["ContentDisposition"] == 'attachment; filename="a b.txt"'
        assert response["ContentEncoding"] == "identity"
        assert response["ContentLanguage"] == "de-CH"
        assert parsedate_to_datetime(headers["expires"]) == expires
        # S3 lower-cases user metadata names; values come back verbatim.
        assert response["Metadata"] == {"color": "blue", "mixed-case": "Value 1"}
    assert s3.get_object(Bucket=bucket, Key="h")["Body"].read() == data


def test_default_content_type(s3: Any, bucket: str, http: httpx.Client) -> None:
    assert http.put(f"/{bucket}/raw", content=b"y").status_code == 200  # httpx sends no Content-Type here
    assert s3.head_object(Bucket=bucket, Key="raw")["ContentType"] == "binary/octet-stream"


# ---- Range ---------------------------------------------------------------------------------------


@pytest.fixture
def ranged(s3: Any, bucket: str) -> tuple[str, bytes]:
    data = os.urandom(1000)
    put(s3, bucket, "r", data)
    return bucket, data


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 1),
    ("bytes=10-19", 10, 20),
    ("bytes=100-", 100, 1000),
    ("bytes=-50", 950, 1000),
    ("bytes=990-5000", 990, 1000),
    ("bytes=-5000", 0, 1000),
    ("bytes=999-999", 999, 1000),
])
def test_range_forms(s3: Any, ranged: tuple[str, bytes], header: str, start: int, end: int) -> None:
    bucket, data = ranged
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end - 1}/1000"
    assert got["ContentLength"] == end - start
    assert got["Body"].read() == data[start:end]
    assert got["ETag"] == md5_etag(data)
    head = s3.head_object(Bucket=bucket, Key="r", Range=header)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentRange"] == f"bytes {start}-{end - 1}/1000"
    assert head["ContentLength"] == end - start


def test_range_large_object_streams_exact_slice(s3: Any, bucket: str) -> None:
    data = os.urandom(5 << 20)
    put(s3, bucket, "big", data)
    start, end = (1 << 20) + 7, (4 << 20) + 3
    got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end - 1}")
    assert got["ContentRange"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert got["Body"].read() == data[start:end]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-1000", "bytes=5000-6000"])
def test_range_start_past_end_is_416(http: httpx.Client, ranged: tuple[str, bytes], header: str) -> None:
    bucket, _ = ranged
    response = http.get(f"/{bucket}/r", headers={"range": header})
    assert response.status_code == 416
    assert xml_code(response) == "InvalidRange"
    assert response.headers["content-range"] == "bytes */1000"


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=20-10", "items=0-5", "bytes=0-1,5-6", "bytes=-"])
def test_range_invalid_is_ignored(http: httpx.Client, ranged: tuple[str, bytes], header: str) -> None:
    bucket, data = ranged
    response = http.get(f"/{bucket}/r", headers={"range": header})
    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert response.content == data


@pytest.mark.parametrize("header", ["bytes=0-0", "bytes=0-", "bytes=-1"])
def test_range_on_empty_object_is_416(s3: Any, http: httpx.Client, bucket: str, header: str) -> None:
    put(s3, bucket, "empty", b"")
    response = http.get(f"/{bucket}/empty", headers={"range": header})
    assert response.status_code == 416
    assert xml_code(response) == "InvalidRange"


# ---- conditional reads ---------------------------------------------------------------------------


@pytest.fixture
def conditional(s3: Any, bucket: str) -> dict[str, Any]:
    data = os.urandom(100)
    etag = put(s3, bucket, "c", data)
    last_modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    return {"bucket": bucket, "data": data, "etag": etag, "lm": last_modified}


def _date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def _status(http: httpx.Client, c: dict[str, Any], method: str, **headers: str) -> int:
    response = http.request(method, f"/{c['bucket']}/c", headers={k.replace("_", "-"): v for k, v in headers.items()})
    if response.status_code == 200 and method == "GET":
        assert response.content == c["data"]
    if response.status_code == 304:
        assert response.content == b""
        assert response.headers["etag"] == c["etag"]
    if response.status_code == 412 and method == "GET":
        assert xml_code(response) == "PreconditionFailed"
    return response.status_code


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_match(http: httpx.Client, conditional: dict[str, Any], method: str) -> None:
    c = conditional
    assert _status(http, c, method, if_match=c["etag"]) == 200
    assert _status(http, c, method, if_match=c["etag"].strip('"')) == 200
    assert _status(http, c, method, if_match=f'"nope", {c["etag"]}') == 200
    assert _status(http, c, method, if_match="*") == 200
    assert _status(http, c, method, if_match='"0123456789abcdef0123456789abcdef"') == 412


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match(http: httpx.Client, conditional: dict[str, Any], method: str) -> None:
    c = conditional
    assert _status(http, c, method, if_none_match=c["etag"]) == 304
    assert _status(http, c, method, if_none_match='"0123456789abcdef0123456789abcdef"') == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_modified_since(http: httpx.Client, conditional: dict[str, Any], method: str) -> None:
    c = conditional
    lm: datetime = c["lm"]
    assert _status(http, c, method, if_modified_since=_date(lm - timedelta(days=1))) == 200
    assert _status(http, c, method, if_modified_since=_date(lm)) == 304
    assert _status(http, c, method, if_modified_since=_date(lm + timedelta(days=1))) == 304
    assert _status(http, c, method, if_modified_since="not a date") == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_unmodified_since(http: httpx.Client, conditional: dict[str, Any], method: str) -> None:
    c = conditional
    lm: datetime = c["lm"]
    assert _status(http, c, method, if_unmodified_since=_date(lm - timedelta(days=1))) == 412
    assert _status(http, c, method, if_unmodified_since=_date(lm)) == 200
    assert _status(http, c, method, if_unmodified_since=_date(lm + timedelta(days=1))) == 200


def test_condition_precedence(http: httpx.Client, conditional: dict[str, Any]) -> None:
    c = conditional
    lm: datetime = c["lm"]
    past, future = _date(lm - timedelta(days=1)), _date(lm + timedelta(days=1))
    other = '"0123456789abcdef0123456789abcdef"'
    # If-Match true wins over a false If-Unmodified-Since (RFC 9110 13.2.2; S3 documents the same).
    assert _status(http, c, "GET", if_match=c["etag"], if_unmodified_since=past) == 200
    assert _status(http, c, "GET", if_match=other, if_unmodified_since=future) == 412
    # If-None-Match decides alone when present: a non-matching tag is 200 even if not modified since.
    assert _status(http, c, "GET", if_none_match=other, if_modified_since=future) == 200
    assert _status(http, c, "GET", if_none_match=c["etag"], if_modified_since=past) == 304
    # A 412 from If-Match comes before a 304 from If-None-Match.
    assert _status(http, c, "GET", if_match=other, if_none_match=c["etag"]) == 412


def test_conditions_through_boto3(s3: Any, conditional: dict[str, Any]) -> None:
    c = conditional
    got = s3.get_object(Bucket=c["bucket"], Key="c", IfMatch=c["etag"])
    assert got["Body"].read() == c["data"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=c["bucket"], Key="c", IfNoneMatch=c["etag"])
    assert error_of(exc)[0] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=c["bucket"], Key="c", IfUnmodifiedSince=c["lm"] - timedelta(hours=1))
    assert error_of(exc) == (412, "PreconditionFailed")


# ---- response overrides and version ids ----------------------------------------------------------


def test_response_header_overrides(s3: Any, bucket: str) -> None:
    put(s3, bucket, "o", b"data", ContentType="text/plain", CacheControl="no-cache")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="application/json",
                        ResponseContentDisposition="inline; filename=x.json", ResponseCacheControl="max-age=5",
                        ResponseContentLanguage="fr", ResponseContentEncoding="identity")
    assert got["ContentType"] == "application/json"
    assert got["ContentDisposition"] == "inline; filename=x.json"
    assert got["CacheControl"] == "max-age=5"
    assert got["ContentLanguage"] == "fr"
    assert got["ContentEncoding"] == "identity"
    assert got["Body"].read() == b"data"
    # The override is per request: the stored headers are unchanged.
    head = s3.head_object(Bucket=bucket, Key="o")
    assert (head["ContentType"], head["CacheControl"]) == ("text/plain", "no-cache")


def test_version_id_null_and_other(s3: Any, http: httpx.Client, bucket: str) -> None:
    put(s3, bucket, "v", b"versioned?")
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"versioned?"
    assert s3.head_object(Bucket=bucket, Key="v", VersionId="null")["ContentLength"] == 10
    for call in (s3.get_object, s3.delete_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, Key="v", VersionId="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
        assert error_of(exc) == (400, "InvalidArgument")
    response = http.head(f"/{bucket}/v", params={"versionId": "abc"})
    assert response.status_code == 400
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"versioned?"  # the bad DELETE did nothing
    s3.delete_object(Bucket=bucket, Key="v", VersionId="null")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="v")
    assert error_of(exc)[0] == 404


# ---- deletes -------------------------------------------------------------------------------------


def test_delete_object(s3: Any, bucket: str) -> None:
    put(s3, bucket, "d", b"x")
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="d")
    assert error_of(exc) == (404, "NoSuchKey")
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never/was")["ResponseMetadata"]["HTTPStatusCode"] == 204


@pytest.mark.not_on_origin(reason=(
    "'..' and '.' segments are refused by the directory under storage; at an S3 origin they are "
    "ordinary keys"
))
def test_delete_objects_verbose(s3: Any, bucket: str) -> None:
    for key in ("a", "b", "dir/c"):
        put(s3, bucket, key, key.encode())
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a"}, {"Key": "dir/c"}, {"Key": "missing"}, {"Key": "../escape"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "dir/c", "missing"]
    errors = result["Errors"]
    assert [(e["Key"], e["Code"]) for e in errors] == [("../escape", "InvalidArgument")]
    remaining = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in remaining["Contents"]] == ["b"]


@pytest.mark.not_on_origin(reason=(
    "'..' and '.' segments are refused by the directory under storage; at an S3 origin they are "
    "ordinary keys"
))
def test_delete_objects_quiet(s3: Any, bucket: str) -> None:
    put(s3, bucket, "a", b"1")
    put(s3, bucket, "b", b"2")
    result = s3.delete_objects(Bucket=bucket, Delete={"Quiet": True, "Objects": [
        {"Key": "a"}, {"Key": "missing"}, {"Key": "x/./y"}]})
    assert "Deleted" not in result
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("x/./y", "InvalidArgument")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]


def _delete_xml(keys: list[str]) -> bytes:
    items = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{items}</Delete>'.encode()


@pytest.mark.parametrize("body", [
    b"<Delete><Object><Key>a</Key></Object>",  # not well-formed
    b"this is not xml",
    b"<Remove><Object><Key>a</Key></Object></Remove>",  # wrong document element
    b"<Delete></Delete>",  # no objects
    b"<Delete><Object><VersionId>null</VersionId></Object></Delete>",  # no key
    b"",
])
def test_delete_objects_malformed(s3: Any, http: httpx.Client, bucket: str, body: bytes) -> None:
    put(s3, bucket, "a", b"kept")
    response = http.post(f"/{bucket}", params={"delete": ""}, content=body)
    assert response.status_code == 400
    assert xml_code(response) == "MalformedXML"
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"kept"


def test_delete_objects_limit(s3: Any, http: httpx.Client, bucket: str) -> None:
    put(s3, bucket, "k0", b"kept")
    response = http.post(f"/{bucket}", params={"delete": ""}, content=_delete_xml([f"k{i}" for i in range(1001)]))
    assert response.status_code == 400
    assert xml_code(response) == "MalformedXML"
    assert s3.get_object(Bucket=bucket, Key="k0")["Body"].read() == b"kept"
    response = http.post(f"/{bucket}", params={"delete": ""}, content=_delete_xml([f"k{i}" for i in range(1000)]))
    assert response.status_code == 200
    deleted = ET.fromstring(response.content).findall(f"{NS}Deleted")
    assert len(deleted) == 1000
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_delete_objects_missing_bucket(http: httpx.Client) -> None:
    response = http.post("/no-such-bucket-here", params={"delete": ""}, content=_delete_xml(["a"]))
    assert response.status_code == 404
    assert xml_code(response) == "NoSuchBucket"


# ---- copies --------------------------------------------------------------------------------------


def test_copy_metadata_directive_copy(s3: Any, bucket: str) -> None:
    data = os.urandom(300 << 10)
    etag = put(s3, bucket, "src", data, ContentType="image/png", CacheControl="max-age=1", Metadata={"a": "1"})
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert result["CopyObjectResult"]["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == data
    assert (got["ContentType"], got["CacheControl"], got["Metadata"]) == ("image/png", "max-age=1", {"a": "1"})
    assert got["ETag"] == etag


def test_copy_metadata_directive_replace_across_buckets(s3: Any, bucket: str) -> None:
    other = bucket + "-b"
    s3.create_bucket(Bucket=other)
    data = b"copy me"
    put(s3, bucket, "src", data, ContentType="image/png", Metadata={"a": "1"})
    s3.copy_object(Bucket=other, Key="deep/dst", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   ContentType="text/plain", Metadata={"b": "2"})
    got = s3.get_object(Bucket=other, Key="deep/dst")
    assert got["Body"].read() == data
    assert (got["ContentType"], got["Metadata"]) == ("text/plain", {"b": "2"})
    source = s3.head_object(Bucket=bucket, Key="src")
    assert (source["ContentType"], source["Metadata"]) == ("image/png", {"a": "1"})


def test_copy_to_self(s3: Any, bucket: str) -> None:
    data = b"self"
    put(s3, bucket, "s", data, ContentType="text/plain", Metadata={"v": "1"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="s", CopySource={"Bucket": bucket, "Key": "s"})
    assert error_of(exc) == (400, "InvalidRequest")
    s3.copy_object(Bucket=bucket, Key="s", CopySource={"Bucket": bucket, "Key": "s"}, MetadataDirective="REPLACE",
                   ContentType="application/x-new", Metadata={"v": "2"})
    got = s3.get_object(Bucket=bucket, Key="s")
    assert got["Body"].read() == data
    assert (got["ContentType"], got["Metadata"]) == ("application/x-new", {"v": "2"})
    assert got["ETag"] == md5_etag(data)


def test_copy_source_conditions(s3: Any, bucket: str) -> None:
    etag = put(s3, bucket, "src", b"cond")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src",
                       CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(exc) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", CopySourceIfNoneMatch=etag)
    assert error_of(exc) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dst")
    assert error_of(exc)[0] == 404
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src", CopySourceIfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"cond"


def test_copy_missing_source(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/nothing")
    assert error_of(exc) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource="no-such-bucket-here/x")
    assert error_of(exc) == (404, "NoSuchBucket")


# ---- conditional writes --------------------------------------------------------------------------


def test_put_if_none_match_star(s3: Any, bucket: str) -> None:
    etag = put(s3, bucket, "once", b"first", IfNoneMatch="*")
    assert etag == md5_etag(b"first")
    with pytest.raises(ClientError) as exc:
        put(s3, bucket, "once", b"second", IfNoneMatch="*")
    assert error_of(exc) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


# ---- missing things ------------------------------------------------------------------------------


def test_missing_bucket(s3: Any) -> None:
    for call in (s3.get_object, s3.delete_object):
        with pytest.raises(ClientError) as exc:
            call(Bucket="no-such-bucket-here", Key="k")
        assert error_of(exc) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        put(s3, "no-such-bucket-here", "k", b"x")
    assert error_of(exc) == (404, "NoSuchBucket")


def test_missing_key(s3: Any, http: httpx.Client, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing/key.bin")
    assert error_of(exc) == (404, "NoSuchKey")
    # Anonymous too: never 403, never a hint beyond NoSuchKey.
    response = http.get(f"/{bucket}/missing")
    assert response.status_code == 404
    assert xml_code(response) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="missing")
    assert error_of(exc)[0] == 404


def test_head_404_has_no_body_on_the_wire(worker: Worker, bucket: str) -> None:
    request = f"HEAD /{bucket}/missing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" \
              f"GET /{bucket}/missing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 404")
    # The very next bytes after the HEAD answer's headers are the GET's status line: no body leaked.
    assert rest.startswith(b"HTTP/1.1 404")
    assert b"<Code>NoSuchKey</Code>" in rest
