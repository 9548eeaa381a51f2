"""Object tagging through a real worker: the tagging sub-resource, x-amz-tagging on writes, copies, limits."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import httpx
import pytest
from botocore.exceptions import ClientError

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _error_code(response: httpx.Response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    return root.findtext("Code") or ""


def _tags(s3, bucket: str, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def _tag_set(tags: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _tag_count(response: dict) -> str | None:  # type: ignore[type-arg]
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")


@pytest.mark.not_on_origin(reason=(
    "moto refuses tag values containing '&', '<', '>' or '%' (InvalidTag from its own pattern "
    "check); these tags use them"
))
def test_put_get_delete_object_tagging(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = b"tagged body"
    put = s3.put_object(Bucket=bucket, Key="obj", Body=body)
    assert _tags(s3, bucket, "obj") == {}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="obj")) is None

    tags = {"project": "s3cache", "with space": "a & b <c>", "empty": "", "unicode": "données"}
    result = s3.put_object_tagging(Bucket=bucket, Key="obj", Tagging=_tag_set(tags))
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert _tags(s3, bucket, "obj") == tags
    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["TagCount"] == 4
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]  # tags are not part of the object's bytes
    assert _tag_count(s3.head_object(Bucket=bucket, Key="obj")) == "4"

    s3.put_object_tagging(Bucket=bucket, Key="obj", Tagging=_tag_set({"only": "one"}))  # replaces the whole set
    assert _tags(s3, bucket, "obj") == {"only": "one"}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="obj")) == "1"

    deleted = s3.delete_object_tagging(Bucket=bucket, Key="obj")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert _tags(s3, bucket, "obj") == {}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="obj")) is None
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="obj")
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == body


@pytest.mark.not_on_origin(reason=(
    "moto refuses tag values containing '&', '<', '>' or '%' (InvalidTag from its own pattern "
    "check); these tags use them"
))
def test_get_object_tagging_raw_xml(s3, bucket: str, worker) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="raw", Body=b"x", Tagging="k1=v1&k2=v%262")
    response = httpx.get(f"{worker.url}/{bucket}/raw?tagging", headers=AUTH)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.tag == f"{ns}Tagging"
    pairs = [(t.findtext(f"{ns}Key"), t.findtext(f"{ns}Value")) for t in root.findall(f"{ns}TagSet/{ns}Tag")]
    assert sorted(pairs) == [("k1", "v1"), ("k2", "v&2")]


@pytest.mark.not_on_origin(reason="moto answers DeleteObjectTagging of a missing key with 500 (AWS: 404 NoSuchKey)")
def test_tagging_missing_object_and_bucket(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for call in (lambda b: s3.get_object_tagging(Bucket=b, Key="nope"),
                 lambda b: s3.put_object_tagging(Bucket=b, Key="nope", Tagging=_tag_set({"a": "b"})),
                 lambda b: s3.delete_object_tagging(Bucket=b, Key="nope")):
        with pytest.raises(ClientError) as exc:
            call(bucket)
        assert _error(exc) == (404, "NoSuchKey")
        with pytest.raises(ClientError) as exc:
            call("no-such-bucket-for-tags")
        assert _error(exc) == (404, "NoSuchBucket")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # tagging a missing key created nothing


@pytest.mark.not_on_origin(reason=(
    "moto refuses tag values containing '&', '<', '>' or '%' (InvalidTag from its own pattern "
    "check); these tags use them"
))
def test_x_amz_tagging_on_put_object(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    header = urlencode({"team": "ml ops", "a+b": "c=d", "pct": "100%"})
    s3.put_object(Bucket=bucket, Key="hdr", Body=b"v", Tagging=header)
    assert _tags(s3, bucket, "hdr") == {"team": "ml ops", "a+b": "c=d", "pct": "100%"}
    assert s3.get_object(Bucket=bucket, Key="hdr")["TagCount"] == 3
    assert _tag_count(s3.head_object(Bucket=bucket, Key="hdr")) == "3"
    s3.put_object(Bucket=bucket, Key="hdr", Body=b"w")  # an overwrite without tags has none
    assert _tags(s3, bucket, "hdr") == {}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="hdr")) is None
    s3.put_object(Bucket=bucket, Key="blank", Body=b"v", Tagging="novalue=&other=x")
    assert _tags(s3, bucket, "blank") == {"novalue": "", "other": "x"}


def test_x_amz_tagging_on_dir_marker(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"", Tagging="kind=folder")
    assert _tags(s3, bucket, "dir/") == {"kind": "folder"}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="dir/")) == "1"
    s3.put_object_tagging(Bucket=bucket, Key="dir/", Tagging=_tag_set({"kind": "marker"}))
    assert _tags(s3, bucket, "dir/") == {"kind": "marker"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dir/"]


def test_x_amz_tagging_on_create_multipart_upload(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=raw&owner=me")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"part one")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert _tags(s3, bucket, "mp") == {"stage": "raw", "owner": "me"}
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["TagCount"] == 2 and got["Body"].read() == b"part one"
    assert _tag_count(s3.head_object(Bucket=bucket, Key="mp")) == "2"

    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp2", Tagging="aws:bad=1")
    assert _error(exc) == (400, "InvalidTag")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_copy_object_tagging_directive(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1&b=2")
    source = {"Bucket": bucket, "Key": "src"}

    s3.copy_object(Bucket=bucket, Key="default", CopySource=source)
    assert _tags(s3, bucket, "default") == {"a": "1", "b": "2"}
    s3.copy_object(Bucket=bucket, Key="copy", CopySource=source, TaggingDirective="COPY", Tagging="ignored=yes")
    assert _tags(s3, bucket, "copy") == {"a": "1", "b": "2"}
    s3.copy_object(Bucket=bucket, Key="replace", CopySource=source, TaggingDirective="REPLACE", Tagging="c=3")
    assert _tags(s3, bucket, "replace") == {"c": "3"}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="replace")) == "1"
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource=source, TaggingDirective="REPLACE")
    assert _tags(s3, bucket, "cleared") == {}
    assert _tag_count(s3.head_object(Bucket=bucket, Key="cleared")) is None
    for key in ("default", "copy", "replace", "cleared"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"source"
    assert _tags(s3, bucket, "src") == {"a": "1", "b": "2"}  # the source is untouched

    # Copying an object onto itself with new tags (metadata REPLACE makes the copy legal).
    s3.copy_object(Bucket=bucket, Key="src", CopySource=source, MetadataDirective="REPLACE",
                   TaggingDirective="REPLACE", Tagging="self=1")
    assert _tags(s3, bucket, "src") == {"self": "1"}
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"source"

    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="bad", CopySource=source, TaggingDirective="MERGE")
    assert _error(exc) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="bad", CopySource=source, TaggingDirective="REPLACE", Tagging="aws:x=1")
    assert _error(exc) == (400, "InvalidTag")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="bad")
    assert _error(exc) == (404, "404")


MAX_OK = {f"k{i}": "v" for i in range(10)}
INVALID_TAG_SETS = {
    "eleven tags": [(f"k{i}", "v") for i in range(11)],
    "key of 129 chars": [("k" * 129, "v")],
    "value of 257 chars": [("k", "v" * 257)],
    "duplicate keys": [("dup", "1"), ("dup", "2")],
    "aws: prefix": [("aws:createdBy", "me")],
    "AWS: prefix any case": [("AWS:x", "me")],
    "empty key": [("", "v")],
}


def _tagging_xml(pairs: list[tuple[str, str]]) -> bytes:
    tags = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>{tags}</TagSet></Tagging>'.encode()


def test_tag_limits_that_hold(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="lim", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="lim", Tagging=_tag_set(MAX_OK))
    assert _tags(s3, bucket, "lim") == MAX_OK
    edge = {"k" * 128: "v" * 256}
    s3.put_object_tagging(Bucket=bucket, Key="lim", Tagging=_tag_set(edge))
    assert _tags(s3, bucket, "lim") == edge
    s3.put_object(Bucket=bucket, Key="lim-hdr", Body=b"x", Tagging=urlencode(edge))
    assert _tags(s3, bucket, "lim-hdr") == edge


@pytest.mark.parametrize("case", sorted(INVALID_TAG_SETS))
def test_invalid_tags_on_put_object_tagging(s3, bucket: str, worker, case: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x", Tagging="keep=me")
    response = httpx.put(f"{worker.url}/{bucket}/obj?tagging", content=_tagging_xml(INVALID_TAG_SETS[case]),
                         headers=AUTH)
    assert response.status_code == 400, response.text
    assert _error_code(response) == "InvalidTag"
    assert _tags(s3, bucket, "obj") == {"keep": "me"}  # the refused set changed nothing
    bucket_level = httpx.put(f"{worker.url}/{bucket}?tagging", content=_tagging_xml(INVALID_TAG_SETS[case]),
                             headers=AUTH)
    assert bucket_level.status_code == 400
    assert _error_code(bucket_level) == "InvalidTag"


@pytest.mark.parametrize("case", sorted(INVALID_TAG_SETS))
def test_invalid_tags_in_x_amz_tagging(s3, bucket: str, worker, case: str) -> None:  # type: ignore[no-untyped-def]
    header = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in INVALID_TAG_SETS[case])
    response = httpx.put(f"{worker.url}/{bucket}/hdr", content=b"payload", headers={**AUTH, "x-amz-tagging": header})
    assert response.status_code == 400, response.text
    assert _error_code(response) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="hdr")
    assert _error(exc) == (404, "404")  # nothing was written


@pytest.mark.parametrize("body", [
    b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet>",
    b"not xml at all",
    b"<Tagging><Tag><Key>a</Key><Value>b</Value></Tag></Tagging>",
    b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
    b"<Other><TagSet/></Other>",
    b"",
])
def test_malformed_tagging_xml(s3, bucket: str, worker, body: bytes) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x", Tagging="keep=me")
    response = httpx.put(f"{worker.url}/{bucket}/obj?tagging", content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert _error_code(response) == "MalformedXML"
    assert _tags(s3, bucket, "obj") == {"keep": "me"}


def test_tagging_with_version_id(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="v", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="v", VersionId="null", Tagging=_tag_set({"a": "b"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="v", VersionId="null")["TagSet"] == [{"Key": "a", "Value": "b"}]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="v", VersionId="3HL4kqtJlcpXroDTDmJ")
    assert _error(exc) == (400, "InvalidArgument")


def test_tagging_does_not_change_etag_or_listing(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    body = b"stable"
    s3.put_object(Bucket=bucket, Key="s", Body=body)
    s3.put_object_tagging(Bucket=bucket, Key="s", Tagging=_tag_set({"x": "y"}))
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [("s", f'"{hashlib.md5(body).hexdigest()}"', 6)]
