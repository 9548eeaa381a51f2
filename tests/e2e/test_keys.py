"""Object keys through a real worker: special characters round-trip, length limits, and no path escapes.

Escape attempts go out as raw request targets (httpx's ``target`` extension), so no client normalizes
``..`` segments or percent-escapes before the server sees them.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}

SPECIAL_CHARS = [" ", "+", "&", "=", "%", "~", "*", "(", ")", ";", ",", "@", "!", "$", "'"]
SPECIAL_KEYS = [f"sp{c}ecial/x{c}y{c}.txt" for c in SPECIAL_CHARS] + [
    "données/ß/日本.txt",
    "all +&=%~*();,@!$' chars",
    "%41%2F%20 literal escapes",
    "trailing space ",
    "emoji/\U0001F600.bin",
    "q?x=1#frag",
    "back\\slash",
    "line\nbreak\ttab\rcr",
    " ",
]


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _xml_code(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error", response.text
    return root.findtext("Code") or ""


@pytest.fixture(scope="module")
def raw(worker) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=worker.url, headers=AUTH) as client:
        yield client


def _send(client: httpx.Client, method: str, target: str, content: bytes = b"",
          headers: dict[str, str] | None = None) -> httpx.Response:
    """Send target exactly as written: httpx would otherwise remove dot segments."""
    request = client.build_request(method, target, content=content, headers=headers,
                                   extensions={"target": target.encode("ascii")})
    return client.send(request)


def _names_under(root: Path) -> set[str]:
    names = set()
    for _, dirs, files in os.walk(root):
        names.update(dirs)
        names.update(files)
    return names


# ---- special characters --------------------------------------------------------------------------


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_keys_round_trip(s3, bucket: str, data_dir: Path, key: str) -> None:  # type: ignore[no-untyped-def]
    body = f"body of {key}".encode()
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    assert s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"] == etag
    assert (data_dir / bucket / key).read_bytes() == body  # where a person looking at the disk expects it
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body and got["ETag"] == etag
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body) and head["ETag"] == etag
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket, Prefix=key)["Contents"]] == [key]
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == [key]

    copy_key = "copy of " + key
    copied = s3.copy_object(Bucket=bucket, Key=copy_key, CopySource={"Bucket": bucket, "Key": key})
    assert copied["CopyObjectResult"]["ETag"] == etag
    assert s3.get_object(Bucket=bucket, Key=copy_key)["Body"].read() == body
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted([key, copy_key])

    assert s3.delete_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert _error(exc) == (404, "NoSuchKey")
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": copy_key}]})
    assert [d["Key"] for d in deleted["Deleted"]] == [copy_key]
    assert "Errors" not in deleted
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_raw_path_encoding(s3, bucket: str, raw: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """In a path '+' is a plus and %2B, %20 and %2F decode once: exactly what SigV4 clients send."""
    assert _send(raw, "PUT", f"/{bucket}/a+b", b"plus").status_code == 200
    assert _send(raw, "PUT", f"/{bucket}/c%2Bd%20e", b"escaped").status_code == 200
    assert _send(raw, "PUT", f"/{bucket}/f%2Fg", b"slash").status_code == 200
    assert _send(raw, "PUT", f"/{bucket}/h%2541", b"percent").status_code == 200
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a+b", "c+d e", "f/g", "h%41"]
    assert s3.get_object(Bucket=bucket, Key="a+b")["Body"].read() == b"plus"
    assert s3.get_object(Bucket=bucket, Key="h%41")["Body"].read() == b"percent"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="a b")
    assert _error(exc) == (404, "404")
    bad_utf8 = _send(raw, "PUT", f"/{bucket}/bad%FF%FE", b"x")
    assert bad_utf8.status_code == 400
    assert _xml_code(bad_utf8) == "InvalidURI"


# ---- length ---------------------------------------------------------------------------------------


def _long_key(size: int, char: str = "k") -> str:
    """A key of exactly size UTF-8 bytes, in '/'-separated parts short enough for any file system."""
    part = char * (200 // len(char.encode())) + "/"
    key = ""
    while len((key + part).encode()) < size - 10:
        key += part
    return key + "x" * (size - len(key.encode()))


def test_long_key_helper() -> None:
    for size in (1024, 1025, 300):
        for char in ("k", "日", "ß"):
            assert len(_long_key(size, char).encode()) == size, (size, char)


@pytest.mark.parametrize("char", ["k", "日"])
def test_key_of_1024_bytes_works_and_1025_is_too_long(  # type: ignore[no-untyped-def]
        s3, bucket: str, backend: str, char: str) -> None:
    key = _long_key(1024, char)
    assert len(key.encode()) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"long")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"long"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    s3.copy_object(Bucket=bucket, Key=key[:-1] + "c", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=key[:-1] + "c")["Body"].read() == b"long"

    if backend == "s3":
        pytest.skip("moto does not enforce S3's 1024-byte key limit (AWS answers KeyTooLongError itself)")
    too_long = _long_key(1025, char)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=too_long, Body=b"x")
    assert _error(exc) == (400, "KeyTooLongError")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key=too_long, CopySource={"Bucket": bucket, "Key": key})
    assert _error(exc) == (400, "KeyTooLongError")
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key=too_long)
    assert _error(exc) == (400, "KeyTooLongError")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == sorted([key, key[:-1] + "c"])


@pytest.mark.not_on_origin(reason=(
    "a rule of the directory under storage (file names of at most 255 bytes); S3 keys have no "
    "segment limit"
))
def test_long_path_segment_is_refused_cleanly(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """A single part longer than a file name can be is an S3 error, not an I/O failure."""
    s3.put_object(Bucket=bucket, Key="s" * 255, Body=b"ok")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="s" * 256, Body=b"x")
    assert _error(exc) == (400, "InvalidArgument")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["s" * 255]


# ---- path escapes --------------------------------------------------------------------------------


ESCAPE_TARGETS = [
    ("/{bucket}/../{token}", "InvalidArgument"),
    ("/{bucket}/a/../../{token}", "InvalidArgument"),
    ("/{bucket}/a/../../../{token}", "InvalidArgument"),
    ("/{bucket}/%2e%2e/{token}", "InvalidArgument"),
    ("/{bucket}/%2E%2E%2F%2E%2E%2F{token}", "InvalidArgument"),
    ("/{bucket}/a%2F..%2F..%2F{token}", "InvalidArgument"),
    ("/{bucket}/./{token}", "InvalidArgument"),
    ("/{bucket}/a//{token}", "InvalidArgument"),
    ("/{bucket}/{token}%00.txt", "InvalidArgument"),
    ("/{bucket}/%00", "InvalidArgument"),
    ("/{bucket}//tmp/{token}", "InvalidArgument"),
    ("/{bucket}/%2Ftmp%2F{token}", "InvalidArgument"),
    ("/{bucket}/.s3cache/{token}", "InvalidArgument"),
    ("/{bucket}/.s3cache/tmp/{token}", "InvalidArgument"),
    ("/{bucket}/%2es3cache/meta/{token}", "InvalidArgument"),
    ("/{bucket}/.s3cache", "InvalidArgument"),
    ("/../{token}", "InvalidBucketName"),
    ("/%2e%2e/{token}", "InvalidBucketName"),
    ("/./{token}", "InvalidBucketName"),
    ("//{bucket}/{token}", "InvalidBucketName"),
    ("//tmp/{token}", "InvalidBucketName"),
]


@pytest.mark.parametrize(("template", "code"), ESCAPE_TARGETS)
def test_path_escapes_are_refused(bucket: str, data_dir: Path, raw: httpx.Client,  # type: ignore[no-untyped-def]
                                  template: str, code: str) -> None:
    token = f"escape-{uuid.uuid4().hex}"
    target = template.format(bucket=bucket, token=token)
    outside = data_dir.parent.parent  # the test run's temporary tree, above the worker's directory
    payload = token.encode()
    response = _send(raw, "PUT", target, payload)
    assert response.status_code == 400, (target, response.status_code, response.text)
    assert _xml_code(response) == code, target
    for method in ("GET", "HEAD", "DELETE"):
        answer = _send(raw, method, target)
        assert answer.status_code == 400, (method, target, answer.status_code)
        if method != "HEAD":
            assert _xml_code(answer) == code
    upload = _send(raw, "POST", target + "?uploads")
    assert upload.status_code == 400 and _xml_code(upload) == code, target
    assert not any(token in name for name in _names_under(outside)), target
    assert not any(token in name for name in os.listdir("/tmp")), target
    assert not any(token in name for name in os.listdir("/")), target
    for path in (data_dir / bucket).rglob("*"):
        if path.is_file():
            assert payload not in path.read_bytes(), path


def test_escape_cannot_read_or_delete_outside(s3, bucket: str, data_dir: Path, raw: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    token = f"secret-{uuid.uuid4().hex}"
    secret = data_dir.parent / token  # beside the data directory
    secret.write_bytes(b"top secret")
    beside = data_dir / token  # beside the bucket directories
    beside.write_bytes(b"also secret")
    try:
        for target in (f"/{bucket}/../../{token}", f"/{bucket}/../{token}", f"/{bucket}/%2E%2E/{token}",
                       f"/{bucket}/x/..%2F..%2F..%2F{token}"):
            for method in ("GET", "DELETE"):
                response = _send(raw, method, target)
                assert response.status_code == 400, (method, target)
                assert _xml_code(response) == "InvalidArgument"
                assert b"top secret" not in response.content and b"also secret" not in response.content
        for source in (f"{bucket}/../../{token}", f"{bucket}/../{token}", f"/{bucket}/%2e%2e/{token}"):
            response = _send(raw, "PUT", f"/{bucket}/stolen", headers={"x-amz-copy-source": source})
            assert response.status_code == 400, source
            assert _xml_code(response) == "InvalidArgument"
        for source in (f"../{token}", f"%2e%2e/{token}"):  # the source bucket itself escapes
            response = _send(raw, "PUT", f"/{bucket}/stolen", headers={"x-amz-copy-source": source})
            assert response.status_code == 400, source
            assert _xml_code(response) == "InvalidBucketName"
        deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": f"../../{token}"}, {"Key": f"../{token}"}, {"Key": f"/{token}"}, {"Key": ".s3cache/meta"}]})
        assert "Deleted" not in deleted
        assert sorted(e["Code"] for e in deleted["Errors"]) == ["InvalidArgument"] * 4
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
        assert secret.read_bytes() == b"top secret"
        assert beside.read_bytes() == b"also secret"
    finally:
        secret.unlink()
        beside.unlink()


def test_system_directory_is_not_reachable_as_keys(s3, bucket: str, data_dir: Path, raw: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", Tagging="a=b")
    meta_files = [p for p in (data_dir / bucket / ".s3cache").rglob("*.json")]
    assert meta_files
    relative = meta_files[0].relative_to(data_dir / bucket).as_posix()
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        response = _send(raw, method, f"/{bucket}/{relative}", b"overwrite" if method == "PUT" else b"")
        assert response.status_code == 400, method
        if method != "HEAD":
            assert _xml_code(response) == "InvalidArgument"
    assert meta_files[0].exists()
    assert b"overwrite" not in meta_files[0].read_bytes()
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "a", "Value": "b"}]
    # A similar name that is not the system directory is an ordinary key.
    s3.put_object(Bucket=bucket, Key=".s3cache-not/x", Body=b"fine")
    s3.put_object(Bucket=bucket, Key="sub/.s3cache/x", Body=b"fine too")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [".s3cache-not/x", "k",
                                                                              "sub/.s3cache/x"]


@pytest.mark.not_on_origin(reason=(
    "NUL in a key is refused by the directory under storage's key rules; an S3 origin judges keys "
    "itself"
))
def test_error_xml_stays_well_formed_with_control_characters(bucket: str, raw: httpx.Client) -> None:
    refused = _send(raw, "GET", f"/{bucket}/nul%00here")
    assert refused.status_code == 400
    root = ET.fromstring(refused.content)
    assert root.findtext("Code") == "InvalidArgument"
    assert root.findtext("Resource") == f"/{bucket}/nul%00here"
    missing = _send(raw, "GET", f"/{bucket}/ctl%01key%1F")
    assert missing.status_code == 404
    root = ET.fromstring(missing.content)
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Key") == "ctl%01key%1F"


def test_admin_prefix_is_only_reachable_as_admin(worker, data_dir: Path, raw: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    assert _send(raw, "GET", "/_s3cache/healthz").json() == {"status": "ok"}
    for target in ("/_s3cache", "/_s3cache?list-type=2", "/_S3CACHE/healthz", "/s3cache/healthz",
                   "//_s3cache/healthz", "/x_s3cache/healthz"):
        response = _send(raw, "GET", target)
        assert response.status_code in (400, 404), target
        assert response.headers["content-type"] == "application/xml", target
        assert _xml_code(response) in ("InvalidBucketName", "NoSuchBucket"), target
        assert b'"status"' not in response.content
    created = _send(raw, "PUT", "/_s3cache")
    assert created.status_code == 400 and _xml_code(created) == "InvalidBucketName"
    assert not (data_dir / "_s3cache").exists()
    unknown = _send(raw, "GET", "/_s3cache/nothing-here")
    assert unknown.status_code == 404
    assert b"<Error>" not in unknown.content  # the admin app answered, not an S3 bucket
