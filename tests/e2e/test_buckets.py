"""Bucket operations through a real worker: list, head, create, delete, location, versioning, tagging."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _xml_error(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    code = root.findtext("Code")
    assert code
    return code


def _name() -> str:
    return f"b-{uuid.uuid4().hex[:12]}"


def test_list_buckets_shows_created_buckets_and_skips_invalid_directories(s3, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = _name(), _name()
    s3.create_bucket(Bucket=first)
    s3.create_bucket(Bucket=second)
    bad_dirs = ("Hand_Made", "HANDMADE", "h", "_s3cache", "hand..made", "10.0.0.1", ".hidden-dir")
    for bad in bad_dirs:
        (data_dir / bad).mkdir()
    (data_dir / "plainfile").write_bytes(b"not a bucket")
    try:
        listed = s3.list_buckets()
    finally:
        for bad in bad_dirs:
            (data_dir / bad).rmdir()
        (data_dir / "plainfile").unlink()
    names = [b["Name"] for b in listed["Buckets"]]
    assert first in names and second in names
    assert names == sorted(names)
    for bad in (*bad_dirs, "plainfile"):
        assert bad not in names
    entry = next(b for b in listed["Buckets"] if b["Name"] == first)
    assert entry["CreationDate"].year >= 2024
    assert listed["Owner"]["ID"]


def test_head_bucket(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    head = s3.head_bucket(Bucket=bucket)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=_name())
    assert _error(exc) == (404, "404")
    raw = httpx.head(f"{worker.url}/{_name()}", headers=AUTH)
    assert raw.status_code == 404
    assert raw.content == b""


def test_create_bucket_plain_and_with_configuration(s3, worker, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    plain = _name()
    created = s3.create_bucket(Bucket=plain)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert created["Location"] == f"/{plain}"
    assert (data_dir / plain).is_dir()

    configured = _name()
    s3.create_bucket(Bucket=configured, CreateBucketConfiguration={"LocationConstraint": "us-east-1"})
    assert (data_dir / configured).is_dir()
    s3.head_bucket(Bucket=configured)

    body = (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>")
    raw_name = _name()
    raw = httpx.put(f"{worker.url}/{raw_name}", content=body, headers=AUTH)
    assert raw.status_code == 200, raw.text
    assert (data_dir / raw_name).is_dir()

    broken = _name()
    bad = httpx.put(f"{worker.url}/{broken}", content=b"<CreateBucketConfiguration><Loc", headers=AUTH)
    assert bad.status_code == 400
    assert _xml_error(bad) == "MalformedXML"
    assert not (data_dir / broken).exists()


@pytest.mark.not_on_origin(reason="moto, like AWS in us-east-1, answers 200 to re-creating a bucket you own (409 elsewhere)")
def test_create_existing_bucket_in_us_east_1_is_200(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """S3 answers 200 to re-creating a bucket you own in us-east-1 (the worker's default region); elsewhere 409
    BucketAlreadyOwnedByYou (tests/e2e/test_s3_answers.py runs a worker in eu-west-1)."""
    assert s3.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.parametrize("name", ["UPPER", "a", "ab", "ab..c", "192.168.1.1", "-abc", "abc-", "a_b_c", "ab.-c",
                                  "x" * 64, "xn--abc", "abc-s3alias"])
def test_create_bucket_invalid_name(worker, data_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    response = httpx.put(f"{worker.url}/{name}", headers=AUTH)
    assert response.status_code == 400, response.text
    assert _xml_error(response) == "InvalidBucketName"
    assert ET.fromstring(response.content).findtext("BucketName") == name
    assert not (data_dir / name).exists()


def test_create_bucket_valid_edge_names(s3, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    for name in (f"abc.{uuid.uuid4().hex[:8]}.d", "z" * 60 + uuid.uuid4().hex[:3]):
        s3.create_bucket(Bucket=name)
        assert (data_dir / name).is_dir()
        s3.delete_bucket(Bucket=name)
        assert not (data_dir / name).exists()


def test_delete_bucket(s3, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == (409, "BucketNotEmpty")
    assert (data_dir / name / "k").read_bytes() == b"x"
    s3.delete_object(Bucket=name, Key="k")
    deleted = s3.delete_bucket(Bucket=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert not (data_dir / name).exists()
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert _error(exc) == (404, "NoSuchBucket")


def test_delete_bucket_with_only_a_dir_marker_or_hand_file_is_not_empty(s3, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    name = _name()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="dir/", Body=b"")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket=name, Key="dir/")
    (data_dir / name / "by-hand.txt").write_bytes(b"hand")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == (409, "BucketNotEmpty")
    (data_dir / name / "by-hand.txt").unlink()
    (data_dir / name / "empty-by-hand").mkdir()  # lists as the object "empty-by-hand/"
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc) == (409, "BucketNotEmpty")
    (data_dir / name / "empty-by-hand").rmdir()
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    s3.delete_bucket(Bucket=name)  # only system state left: the bucket is empty
    assert not (data_dir / name).exists()


def test_get_bucket_location(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None  # us-east-1 is the empty constraint
    raw = httpx.get(f"{worker.url}/{bucket}?location", headers=AUTH)
    assert raw.status_code == 200
    root = ET.fromstring(raw.content)
    assert root.tag == f"{NS}LocationConstraint"
    assert (root.text or "") == ""
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_location(Bucket=_name())
    assert _error(exc) == (404, "NoSuchBucket")


def test_get_bucket_versioning(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    versioning = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in versioning
    assert "MFADelete" not in versioning
    raw = httpx.get(f"{worker.url}/{bucket}?versioning", headers=AUTH)
    assert raw.status_code == 200
    root = ET.fromstring(raw.content)
    assert root.tag == f"{NS}VersioningConfiguration"
    assert list(root) == []
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket=_name())
    assert _error(exc) == (404, "NoSuchBucket")


def test_bucket_tagging(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _error(exc) == (404, "NoSuchTagSet")
    tag_set = [{"Key": "team", "Value": "ml"}, {"Key": "cost center", "Value": "4 2&<x>"}, {"Key": "empty", "Value": ""}]
    put = s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set})
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert sorted(got, key=lambda t: t["Key"]) == sorted(tag_set, key=lambda t: t["Key"])
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "only", "Value": "one"}]
    deleted = s3.delete_bucket_tagging(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _error(exc) == (404, "NoSuchTagSet")


def test_bucket_tagging_errors(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    missing = _name()
    for call in (lambda: s3.get_bucket_tagging(Bucket=missing),
                 lambda: s3.put_bucket_tagging(Bucket=missing, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
                 lambda: s3.delete_bucket_tagging(Bucket=missing)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "aws:x", "Value": "b"}]})
    assert _error(exc) == (400, "InvalidTag")
    raw = httpx.put(f"{worker.url}/{bucket}?tagging", content=b"<Tagging><TagSet><Tag><Key>a</Key>", headers=AUTH)
    assert raw.status_code == 400
    assert _xml_error(raw) == "MalformedXML"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _error(exc) == (404, "NoSuchTagSet")  # the refused writes stored nothing
