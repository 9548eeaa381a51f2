"""Part reads (GetObject / HeadObject ?partNumber=), as the transfer managers of newer AWS SDKs download: over the
directory and over an S3 origin (moto), each answered as AWS S3 answers it.

S3: a part of a multipart object is 206 with the part's Content-Range in the object, its Content-Length and
x-amz-mp-parts-count; part 1 of an object not uploaded in parts is the whole object, 206 with a Content-Range and
no parts count; a part past the last is 416 InvalidPartNumber; partNumber with a Range is 400 InvalidRequest; a
partNumber that is no integer of 1 to 10000 is 400 InvalidArgument.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from cache.s3.names import RESERVED_DIR
from rig.processes import Worker

MIB = 1 << 20
# 5 MiB, 5 MiB and 1 MiB, each of bytes of its own
PARTS = [(bytes([65 + i]) + bytes(range(255))) * (size // 256) for i, size in enumerate([5 * MIB, 5 * MIB, MIB])]
AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


@pytest.fixture
def http(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, headers=AUTH, timeout=30) as client:
        yield client


@pytest.fixture
def multipart(s3: Any, bucket: str) -> str:
    key = f"parts-{uuid.uuid4().hex[:8]}"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [{"PartNumber": number, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                                          PartNumber=number, Body=data)["ETag"]}
            for number, data in enumerate(PARTS, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done})
    return key


def test_each_part_of_a_multipart_object(s3: Any, bucket: str, multipart: str) -> None:
    total = sum(len(part) for part in PARTS)
    etag = s3.head_object(Bucket=bucket, Key=multipart)["ETag"]
    assert etag.endswith('-3"')
    start = 0
    for number, data in enumerate(PARTS, 1):
        expected_range = f"bytes {start}-{start + len(data) - 1}/{total}"
        head = s3.head_object(Bucket=bucket, Key=multipart, PartNumber=number)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (head["ContentLength"], head["ContentRange"], head["PartsCount"], head["ETag"]) == \
            (len(data), expected_range, 3, etag)
        for _ in range(2):  # cold, then warm (over an origin: the blocks and the part's place are known)
            got = s3.get_object(Bucket=bucket, Key=multipart, PartNumber=number)
            assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
            assert (got["ContentLength"], got["ContentRange"], got["PartsCount"], got["ETag"]) == \
                (len(data), expected_range, 3, etag)
            assert got["Body"].read() == data
        start += len(data)
    whole = s3.get_object(Bucket=bucket, Key=multipart)  # the same bytes read whole: no parts count, as S3
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "PartsCount" not in whole
    assert whole["Body"].read() == b"".join(PARTS)


def test_part_one_of_a_single_part_object_is_all_of_it(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="single", Body=b"0123456789")
    head = s3.head_object(Bucket=bucket, Key="single", PartNumber=1)
    got = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    for answer in (head, got):
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (answer["ContentLength"], answer["ContentRange"]) == (10, "bytes 0-9/10")
        assert "PartsCount" not in answer
    assert got["Body"].read() == b"0123456789"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=2)
    assert _error(exc) == (416, "InvalidPartNumber")


def test_a_part_past_the_last_is_416(s3: Any, bucket: str, multipart: str, http: httpx.Client) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=4)
    assert _error(exc) == (416, "InvalidPartNumber")
    assert exc.value.response["Error"]["Message"] == "The requested partnumber is not satisfiable"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=multipart, PartNumber=4)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    response = http.get(f"/{bucket}/{multipart}", params={"partNumber": "4"})
    assert response.status_code == 416
    assert ET.fromstring(response.content).findtext("Code") == "InvalidPartNumber"


def test_part_number_with_a_range_is_400(s3: Any, bucket: str, multipart: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=1, Range="bytes=0-9")
    assert _error(exc) == (400, "InvalidRequest")
    assert exc.value.response["Error"]["Message"] == "Cannot specify both Range header and partNumber query parameter"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=multipart, PartNumber=1, Range="bytes=0-9")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("value", ["0", "abc", "10001", "-1", "1.5", "", "\u00b2"])
def test_a_part_number_that_is_no_part_number_is_400(http: httpx.Client, bucket: str, multipart: str,
                                                      value: str) -> None:
    response = http.get(f"/{bucket}/{multipart}", params={"partNumber": value})
    assert response.status_code == 400, response.text
    root = ET.fromstring(response.content)
    assert (root.findtext("Code"), root.findtext("ArgumentName"), root.findtext("ArgumentValue") or "") == \
        ("InvalidArgument", "partNumber", value)
    assert http.head(f"/{bucket}/{multipart}", params={"partNumber": value}).status_code == 400


def test_part_number_0_through_boto3(s3: Any, bucket: str, multipart: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=0)
    assert _error(exc) == (400, "InvalidArgument")


def test_conditions_apply_to_a_part_read(s3: Any, bucket: str, multipart: str) -> None:
    etag = s3.head_object(Bucket=bucket, Key=multipart)["ETag"]
    got = s3.get_object(Bucket=bucket, Key=multipart, PartNumber=3, IfMatch=etag)
    assert got["Body"].read() == PARTS[2]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=3, IfMatch='"0123"')
    assert _error(exc) == (412, "PreconditionFailed")


def test_part_of_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="absent", PartNumber=1)
    assert _error(exc) == (404, "NoSuchKey")


def test_the_directory_records_each_parts_size(s3: Any, bucket: str, multipart: str, data_dir: Path) -> None:
    sidecar = data_dir / bucket / RESERVED_DIR / "meta" / _digest(multipart)[:2] / f"{_digest(multipart)}.json"
    record = json.loads(sidecar.read_text())
    assert (record["parts"], record["part_sizes"]) == (3, [len(part) for part in PARTS])
    # A multipart object completed before the sizes were recorded (its part files long gone): only what is known
    # is answered, never a guessed split; its bytes stay readable by Range.
    del record["part_sizes"]
    sidecar.write_text(json.dumps(record))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=1)
    assert _error(exc) == (400, "InvalidRequest")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=multipart, PartNumber=4)  # past the count the record still holds
    assert _error(exc) == (416, "InvalidPartNumber")
    assert s3.get_object(Bucket=bucket, Key=multipart, Range="bytes=0-9")["Body"].read() == PARTS[0][:10]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
