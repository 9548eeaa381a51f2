"""Conditional writes through one worker, over a directory and over an S3 origin (moto): If-None-Match: * and
If-Match on PutObject, CopyObject (its destination) and CompleteMultipartUpload, If-Match on DeleteObject and per
key in DeleteObjects, each answered with S3's status and error code; the forms S3 does not have are 501."""

from __future__ import annotations

import concurrent.futures
import hashlib
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_objects import error_of, md5_etag, put

PART = 5 << 20  # the smallest part that may be followed by another
WRONG = '"0123456789abcdef0123456789abcdef"'


def body(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def refused(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return error_of(exc)


def upload(s3: Any, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                                      Body=data)["ETag"]}
            for n, data in enumerate(parts, 1)]
    return upload_id, done


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


# ---- PutObject -----------------------------------------------------------------------------------


def test_put_if_none_match_creates_once(s3: Any, bucket: str) -> None:
    assert put(s3, bucket, "k", b"first", IfNoneMatch="*") == md5_etag(b"first")
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*") == \
        (412, "PreconditionFailed")
    assert body(s3, bucket, "k") == b"first"
    s3.delete_object(Bucket=bucket, Key="k")
    assert put(s3, bucket, "k", b"third", IfNoneMatch="*") == md5_etag(b"third")  # absent again: created
    assert body(s3, bucket, "k") == b"third"


def test_put_if_match_replaces_only_the_version_named(s3: Any, bucket: str) -> None:
    etag = put(s3, bucket, "k", b"v1")
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"lost", IfMatch=WRONG) == (412, "PreconditionFailed")
    assert body(s3, bucket, "k") == b"v1"
    assert put(s3, bucket, "k", b"v2", IfMatch=etag) == md5_etag(b"v2")
    # the ETag it named is gone now: a second writer holding it loses
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"v2b", IfMatch=etag) == (412, "PreconditionFailed")
    assert body(s3, bucket, "k") == b"v2"
    assert put(s3, bucket, "k", b"v3", IfMatch=md5_etag(b"v2").strip('"')) == md5_etag(b"v3")  # unquoted too


def test_put_if_match_of_no_object_is_no_such_key(s3: Any, bucket: str) -> None:
    assert refused(s3.put_object, Bucket=bucket, Key="none", Body=b"x", IfMatch=WRONG) == (404, "NoSuchKey")
    assert refused(s3.head_object, Bucket=bucket, Key="none")[0] == 404


def test_put_if_none_match_of_an_etag_is_not_implemented(s3: Any, bucket: str) -> None:
    etag = put(s3, bucket, "k", b"v1")
    assert refused(s3.put_object, Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch=etag) == (501, "NotImplemented")
    assert body(s3, bucket, "k") == b"v1"


def test_copy_object_destination_conditions(s3: Any, bucket: str) -> None:
    put(s3, bucket, "src", b"copied bytes")
    target = put(s3, bucket, "dst", b"there first")
    copy = {"Bucket": bucket, "Key": "dst", "CopySource": f"{bucket}/src"}
    assert refused(s3.copy_object, **copy, IfNoneMatch="*") == (412, "PreconditionFailed")
    assert refused(s3.copy_object, **copy, IfMatch=WRONG) == (412, "PreconditionFailed")
    assert refused(s3.copy_object, **copy, IfNoneMatch=target) == (501, "NotImplemented")
    assert body(s3, bucket, "dst") == b"there first"
    assert s3.copy_object(**copy, IfMatch=target)["CopyObjectResult"]["ETag"] == md5_etag(b"copied bytes")
    assert body(s3, bucket, "dst") == b"copied bytes"
    fresh = {**copy, "Key": "fresh"}
    assert refused(s3.copy_object, **fresh, IfMatch=WRONG) == (404, "NoSuchKey")
    s3.copy_object(**fresh, IfNoneMatch="*")
    assert body(s3, bucket, "fresh") == b"copied bytes"


def test_concurrent_creates_through_one_worker_have_one_winner(s3: Any, bucket: str) -> None:
    bodies = [f"writer {i} ".encode() * 2000 for i in range(12)]

    def create(data: bytes) -> tuple[int, str]:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=data, IfNoneMatch="*")
            return 200, ""
        except ClientError as exc:
            response: Any = exc.response
            return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        outcomes = list(pool.map(create, bodies))
    winners = [data for data, (status, _) in zip(bodies, outcomes, strict=True) if status == 200]
    assert len(winners) == 1, outcomes
    assert all(o in ((412, "PreconditionFailed"), (409, "ConditionalRequestConflict")) for o in outcomes if o[0] != 200)
    assert body(s3, bucket, "race") == winners[0]


# ---- CompleteMultipartUpload ---------------------------------------------------------------------


def test_complete_if_none_match(s3: Any, bucket: str) -> None:
    parts = [b"a" * PART, b"b" * 100]
    upload_id, done = upload(s3, bucket, "mp", parts)
    put(s3, bucket, "mp", b"there first")
    assert refused(s3.complete_multipart_upload, Bucket=bucket, Key="mp", UploadId=upload_id,
                   MultipartUpload={"Parts": done}, IfNoneMatch="*") == (412, "PreconditionFailed")
    assert body(s3, bucket, "mp") == b"there first"
    s3.delete_object(Bucket=bucket, Key="mp")
    # the upload outlived the refusal: completed now that the key is free, and a retry of that Complete is 200
    for _ in range(2):
        answer = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                              MultipartUpload={"Parts": done}, IfNoneMatch="*")
        assert answer["ETag"] == multipart_etag(parts)
    assert body(s3, bucket, "mp") == b"".join(parts)


def test_complete_if_match(s3: Any, bucket: str) -> None:
    parts = [b"c" * PART, b"d" * 10]
    upload_id, done = upload(s3, bucket, "mp", parts)
    assert refused(s3.complete_multipart_upload, Bucket=bucket, Key="mp", UploadId=upload_id,
                   MultipartUpload={"Parts": done}, IfMatch=WRONG) == (404, "NoSuchKey")
    etag = put(s3, bucket, "mp", b"old")
    assert refused(s3.complete_multipart_upload, Bucket=bucket, Key="mp", UploadId=upload_id,
                   MultipartUpload={"Parts": done}, IfMatch=WRONG) == (412, "PreconditionFailed")
    assert body(s3, bucket, "mp") == b"old"
    answer = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                          MultipartUpload={"Parts": done}, IfMatch=etag)
    assert answer["ETag"] == multipart_etag(parts)
    assert body(s3, bucket, "mp") == b"".join(parts)


# ---- DeleteObject and DeleteObjects --------------------------------------------------------------


def test_delete_if_match(s3: Any, bucket: str) -> None:
    etag = put(s3, bucket, "k", b"keep me")
    assert refused(s3.delete_object, Bucket=bucket, Key="k", IfMatch=WRONG) == (412, "PreconditionFailed")
    assert body(s3, bucket, "k") == b"keep me"
    assert s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert refused(s3.head_object, Bucket=bucket, Key="k")[0] == 404
    assert refused(s3.delete_object, Bucket=bucket, Key="k", IfMatch=etag) == (404, "NoSuchKey")


def test_delete_if_none_match_is_not_implemented(worker: Any, s3: Any, bucket: str) -> None:
    put(s3, bucket, "k", b"x")
    r = httpx.delete(f"{worker.url}/{bucket}/k", headers={"If-None-Match": "*"})
    assert r.status_code == 501 and b"<Code>NotImplemented</Code>" in r.content
    assert body(s3, bucket, "k") == b"x"


def test_delete_objects_judges_each_etag(s3: Any, bucket: str) -> None:
    etags = {key: put(s3, bucket, key, key.encode()) for key in ("right", "wrong", "plain")}
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "right", "ETag": etags["right"]},
        {"Key": "wrong", "ETag": WRONG},
        {"Key": "plain"},
        {"Key": "absent", "ETag": WRONG},
    ]})
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["plain", "right"]
    assert sorted((e["Key"], e["Code"]) for e in answer["Errors"]) == [
        ("absent", "NoSuchKey"), ("wrong", "PreconditionFailed")]
    assert body(s3, bucket, "wrong") == b"wrong"
    for key in ("right", "plain"):
        assert refused(s3.head_object, Bucket=bucket, Key=key)[0] == 404
