"""S3 as today's SDKs speak it, through a real worker over both backends (the AWS S3 API reference is the
contract): the calls SDKs and tools make besides reads and writes, and the retries they make.

1. ACLs are answered as a bucket whose Object Ownership is BucketOwnerEnforced answers them.
2. The configuration probes (CORS, policy, lifecycle, encryption, ...) answer S3's "not configured" errors.
3. A CompleteMultipartUpload retried after a lost answer is 200 with the same ETag; an unknown upload is 404.
4. A part re-sent while its first upload is still in flight: the one that finishes last is the part.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from rig.processes import Worker

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=tester/20260101/us-east-1/s3/aws4_request, "
                         "SignedHeaders=host, Signature=0"}
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def _error_body(response: httpx.Response) -> dict[str, str]:
    """The elements of an S3 error document, by name (RequestId checked present, then left out)."""
    assert response.headers["content-type"] == "application/xml", response.text
    root = ET.fromstring(response.content)
    assert root.tag == "Error", response.text
    fields = {child.tag: child.text or "" for child in root}
    assert fields.pop("RequestId") == response.headers["x-amz-request-id"]
    return fields


@pytest.fixture
def http(worker: Worker) -> Any:
    with httpx.Client(base_url=worker.url, headers=AUTH, timeout=30) as client:
        yield client


# ---- 1. ACLs, as a bucket-owner-enforced bucket answers them ---------------------------------------------

OWNER = {"ID": "s3cache", "DisplayName": "s3cache"}
OWNER_ONLY = {"Owner": OWNER, "Grants": [{"Grantee": {**OWNER, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}]}
POLICY_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Owner><ID>s3cache</ID><DisplayName>s3cache</DisplayName></Owner><AccessControlList><Grant>"
    '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
    "<ID>s3cache</ID><DisplayName>s3cache</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    "</AccessControlList></AccessControlPolicy>")
NO_ACLS = (400, "AccessControlListNotSupported", "The bucket does not allow ACLs")
ALL_USERS = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'


def _acl(response: dict[str, Any]) -> dict[str, Any]:
    return {"Owner": response["Owner"], "Grants": response["Grants"]}


def _absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        return bool(error.response["ResponseMetadata"]["HTTPStatusCode"] == 404)
    return False


def test_get_bucket_acl_is_the_owner_with_full_control(s3: Any, bucket: str) -> None:
    assert _acl(s3.get_bucket_acl(Bucket=bucket)) == OWNER_ONLY


def test_get_object_acl_is_the_owner_with_full_control(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _acl(s3.get_object_acl(Bucket=bucket, Key="k")) == OWNER_ONLY
    assert _acl(s3.get_object_acl(Bucket=bucket, Key="k", VersionId="null")) == OWNER_ONLY


def test_acl_documents_are_as_s3_sends_them(http: httpx.Client, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    for path in (f"/{bucket}?acl", f"/{bucket}/a/b?acl"):
        response = http.get(path)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/xml"
        assert response.text == POLICY_XML


def test_acl_of_a_missing_object_or_bucket(s3: Any, http: httpx.Client, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert _error(exc) == (404, "NoSuchKey", "The specified key does not exist.")
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="missing", ACL="private")
    assert _error(exc) == (404, "NoSuchKey", "The specified key does not exist.")
    name = f"t-{uuid.uuid4().hex[:12]}"
    response = http.get(f"/{name}?acl")
    assert response.status_code == 404
    assert _error_body(response) == {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist",
                                     "BucketName": name, "Resource": f"/{name}"}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=name, ACL="private")
    assert _error(exc) == (404, "NoSuchBucket", "The specified bucket does not exist")


@pytest.mark.parametrize("canned", ["private", "bucket-owner-full-control"])
def test_owner_only_canned_acls_are_accepted_and_change_nothing(s3: Any, bucket: str, canned: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ACL=canned)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    s3.put_object_acl(Bucket=bucket, Key="k", ACL=canned)
    s3.put_bucket_acl(Bucket=bucket, ACL=canned)
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"}, ACL=canned)
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"data"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL=canned)["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert _acl(s3.get_bucket_acl(Bucket=bucket)) == OWNER_ONLY
    assert _acl(s3.get_object_acl(Bucket=bucket, Key="k")) == OWNER_ONLY


def test_create_bucket_with_an_acl(s3: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ACL="private")
    s3.head_bucket(Bucket=name)
    refused = f"t-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=refused, ACL="public-read")
    assert _error(exc) == NO_ACLS
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=refused)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # never created


@pytest.mark.parametrize("canned", ["public-read", "public-read-write", "authenticated-read", "bucket-owner-read"])
def test_other_canned_acls_are_refused(s3: Any, bucket: str, canned: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ACL=canned)
    assert _error(exc) == NO_ACLS
    assert _absent(s3, bucket, "k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    source = {"Bucket": bucket, "Key": "k"}
    calls: list[Callable[[], Any]] = [
        lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL=canned),
        lambda: s3.put_bucket_acl(Bucket=bucket, ACL=canned),
        lambda: s3.copy_object(Bucket=bucket, Key="copy", CopySource=source, ACL=canned),
        lambda: s3.copy_object(Bucket=bucket, Key="copy", CopySource=source, ACL=canned, MetadataDirective="REPLACE"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL=canned),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == NO_ACLS
    assert _absent(s3, bucket, "copy")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_grant_headers_are_refused(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", GrantRead=ALL_USERS)
    assert _error(exc) == NO_ACLS
    assert _absent(s3, bucket, "k")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=bucket, GrantFullControl='id="s3cache"')
    assert _error(exc) == NO_ACLS
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", GrantReadACP=ALL_USERS)
    assert _error(exc) == NO_ACLS


def test_a_refusal_is_the_s3_error_document(http: httpx.Client, bucket: str) -> None:
    response = http.put(f"/{bucket}/k", content=b"data", headers={"x-amz-acl": "public-read"})
    assert response.status_code == 400
    assert _error_body(response) == {"Code": "AccessControlListNotSupported",
                                     "Message": "The bucket does not allow ACLs", "Resource": f"/{bucket}/k"}


def test_an_owner_only_access_control_policy_is_accepted(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    policy = s3.get_bucket_acl(Bucket=bucket)  # what a client reads back and puts again
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=_acl(policy))
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=_acl(policy))
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={  # no Owner, no DisplayName
        "Grants": [{"Grantee": {"ID": "s3cache", "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}]})
    assert _acl(s3.get_bucket_acl(Bucket=bucket)) == OWNER_ONLY


@pytest.mark.parametrize("policy", [
    {"Owner": OWNER, "Grants": [*OWNER_ONLY["Grants"],
                                {"Grantee": {"URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                                             "Type": "Group"}, "Permission": "READ"}]},
    {"Owner": OWNER, "Grants": [{"Grantee": {"ID": "someone-else", "Type": "CanonicalUser"},
                                 "Permission": "FULL_CONTROL"}]},
    {"Owner": OWNER, "Grants": [{"Grantee": {"ID": "s3cache", "Type": "CanonicalUser"}, "Permission": "READ"}]},
    {"Owner": {"ID": "someone-else"}, "Grants": OWNER_ONLY["Grants"]},
    {"Owner": OWNER, "Grants": []},  # nobody, not even the owner
], ids=["all-users-read", "another-user", "owner-read-only", "another-owner", "no-grants"])
def test_any_other_access_control_policy_is_refused(s3: Any, bucket: str, policy: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert _error(exc) == NO_ACLS
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy)
    assert _error(exc) == NO_ACLS


def test_put_acl_requests_s3_refuses_whatever_the_ownership(http: httpx.Client, bucket: str) -> None:
    """Neither an ACL header nor a body; both; a body that is not an AccessControlPolicy."""
    cases = [
        ({}, b"", 400, "MissingSecurityHeader", "Your request was missing a required header"),
        ({"x-amz-acl": "private"}, POLICY_XML.encode(), 400, "UnexpectedContent",
         "This request does not support content"),
        ({}, b"<AccessControlPolicy><Owner>", 400, "MalformedACLError",
         "The XML you provided was not well-formed or did not validate against our published schema"),
        ({}, b"<Tagging/>", 400, "MalformedACLError",
         "The XML you provided was not well-formed or did not validate against our published schema"),
    ]
    for headers, body, status, code, message in cases:
        response = http.put(f"/{bucket}?acl", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert _error_body(response) == {"Code": code, "Message": message, "Resource": f"/{bucket}"}


def test_ownership_controls_are_bucket_owner_enforced(s3: Any, bucket: str, http: httpx.Client) -> None:
    controls = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert controls == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    response = http.get(f"/{bucket}?ownershipControls")
    assert response.text == ('<?xml version="1.0" encoding="UTF-8"?>\n<OwnershipControls xmlns="http://s3.amazonaws'
                             '.com/doc/2006-03-01/"><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership>'
                             "</Rule></OwnershipControls>")
    for method, name in (("PUT", "PutBucketOwnershipControls"), ("DELETE", "DeleteBucketOwnershipControls")):
        response = http.request(method, f"/{bucket}?ownershipControls")
        assert response.status_code == 501
        assert _error_body(response)["Message"] == f"{name} is not implemented by s3cache"


def test_s3cmd_info_calls(http: httpx.Client, s3: Any, bucket: str) -> None:
    """What ``s3cmd info s3://bucket/key`` asks, raw as it sends it (SigV2): every answer one s3cmd can read."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    v2 = {"Authorization": "AWS tester:c2lnbmF0dXJl"}
    assert http.head(f"/{bucket}/k", headers=v2).status_code == 200
    assert http.get(f"/{bucket}?location", headers=v2).status_code == 200
    assert http.get(f"/{bucket}/k?acl", headers=v2).text == POLICY_XML
    assert http.get(f"/{bucket}?acl", headers=v2).text == POLICY_XML
    for sub, code in (("policy", "NoSuchBucketPolicy"), ("cors", "NoSuchCORSConfiguration"),
                      ("lifecycle", "NoSuchLifecycleConfiguration")):
        response = http.get(f"/{bucket}?{sub}", headers=v2)
        assert (response.status_code, _error_body(response)["Code"]) == (404, code)


# ---- 2. the configuration probes ----------------------------------------------------------------------------

PROBES = [
    # (sub-resource, boto3 call, code, message)
    ("cors", "get_bucket_cors", "NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    ("policy", "get_bucket_policy", "NoSuchBucketPolicy", "The bucket policy does not exist"),
    ("lifecycle", "get_bucket_lifecycle_configuration", "NoSuchLifecycleConfiguration",
     "The lifecycle configuration does not exist"),
    ("encryption", "get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError",
     "The server side encryption configuration was not found"),
    ("publicAccessBlock", "get_public_access_block", "NoSuchPublicAccessBlockConfiguration",
     "The public access block configuration was not found"),
    ("website", "get_bucket_website", "NoSuchWebsiteConfiguration",
     "The specified bucket does not have a website configuration"),
    ("replication", "get_bucket_replication", "ReplicationConfigurationNotFoundError",
     "The replication configuration was not found"),
]


@pytest.mark.parametrize(("sub", "call", "code", "message"), PROBES, ids=[p[0] for p in PROBES])
def test_probe_of_a_configuration_is_not_configured(s3: Any, bucket: str, sub: str, call: str, code: str,
                                                    message: str) -> None:
    with pytest.raises(ClientError) as exc:
        getattr(s3, call)(Bucket=bucket)
    assert _error(exc) == (404, code, message)


@pytest.mark.parametrize(("sub", "call", "code", "message"), PROBES, ids=[p[0] for p in PROBES])
def test_probe_answers_the_s3_error_document(http: httpx.Client, bucket: str, sub: str, call: str, code: str,
                                             message: str) -> None:
    response = http.get(f"/{bucket}?{sub}")
    assert response.status_code == 404, response.text
    assert _error_body(response) == {"Code": code, "Message": message, "BucketName": bucket,
                                     "Resource": f"/{bucket}"}


@pytest.mark.parametrize(("sub", "call", "code", "message"), PROBES, ids=[p[0] for p in PROBES])
def test_probe_of_a_missing_bucket_is_no_such_bucket(http: httpx.Client, sub: str, call: str, code: str,
                                                     message: str) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    response = http.get(f"/{name}?{sub}")
    assert response.status_code == 404, response.text
    assert _error_body(response) == {"Code": "NoSuchBucket", "Message": "The specified bucket does not exist",
                                     "BucketName": name, "Resource": f"/{name}"}


SETTERS = [
    ("PUT", "cors", "PutBucketCors"), ("DELETE", "cors", "DeleteBucketCors"),
    ("PUT", "policy", "PutBucketPolicy"), ("DELETE", "policy", "DeleteBucketPolicy"),
    ("PUT", "lifecycle", "PutBucketLifecycleConfiguration"), ("DELETE", "lifecycle", "DeleteBucketLifecycle"),
    ("PUT", "encryption", "PutBucketEncryption"), ("DELETE", "encryption", "DeleteBucketEncryption"),
    ("PUT", "publicAccessBlock", "PutPublicAccessBlock"), ("DELETE", "publicAccessBlock", "DeletePublicAccessBlock"),
    ("PUT", "website", "PutBucketWebsite"), ("DELETE", "website", "DeleteBucketWebsite"),
    ("PUT", "replication", "PutBucketReplication"), ("DELETE", "replication", "DeleteBucketReplication"),
]


@pytest.mark.parametrize(("method", "sub", "name"), SETTERS, ids=[f"{m}-{s}" for m, s, _ in SETTERS])
def test_setting_a_configuration_stays_not_implemented(http: httpx.Client, bucket: str, method: str, sub: str,
                                                       name: str) -> None:
    response = http.request(method, f"/{bucket}?{sub}", content=b"<x/>" if method == "PUT" else b"")
    assert response.status_code == 501, response.text
    assert _error_body(response) == {"Code": "NotImplemented", "Message": f"{name} is not implemented by s3cache",
                                     "Method": method, "ResourceType": sub, "Resource": f"/{bucket}"}


def test_setting_a_configuration_via_boto3_is_not_implemented(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy='{"Version": "2012-10-17", "Statement": []}')
    assert _error(exc) == (501, "NotImplemented", "PutBucketPolicy is not implemented by s3cache")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket_cors(Bucket=bucket)
    assert _error(exc) == (501, "NotImplemented", "DeleteBucketCors is not implemented by s3cache")


# ---- 3. a CompleteMultipartUpload retried after a lost answer -----------------------------------------------

MIB = 1 << 20
NO_SUCH_UPLOAD = ("The specified multipart upload does not exist. The upload ID might be invalid, or the multipart "
                  "upload might have been aborted or completed.")


def _multipart_etag(parts: list[bytes]) -> str:
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'


def _upload(s3: Any, bucket: str, key: str, datas: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                                      Body=data)["ETag"]}
             for n, data in enumerate(datas, start=1)]
    return upload_id, parts


def _complete_body(parts: list[dict[str, Any]]) -> bytes:
    return ("<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{p['PartNumber']}</PartNumber><ETag>{p['ETag']}</ETag></Part>" for p in parts)
        + "</CompleteMultipartUpload>").encode()


@pytest.fixture(scope="module")
def two_parts() -> list[bytes]:
    return [os.urandom(5 * MIB), os.urandom(MIB // 2)]


def test_a_repeated_complete_answers_the_same_etag(s3: Any, bucket: str, two_parts: list[bytes]) -> None:
    upload_id, parts = _upload(s3, bucket, "big", two_parts)
    first = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    assert first["ETag"] == _multipart_etag(two_parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    assert (again["ETag"], again["Bucket"], again["Key"]) == (first["ETag"], bucket, "big")
    got = s3.get_object(Bucket=bucket, Key="big")
    assert (got["ETag"], got["Body"].read()) == (first["ETag"], b"".join(two_parts))
    # The upload itself is gone: no parts to list, nothing to continue, not listed.
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="big", UploadId=upload_id)
    assert _error(exc)[:2] == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="big", UploadId=upload_id, PartNumber=1, Body=b"late")
    assert _error(exc)[:2] == (404, "NoSuchUpload")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_repeated_complete_answers_the_s3_document(http: httpx.Client, s3: Any, bucket: str,
                                                     two_parts: list[bytes]) -> None:
    upload_id, parts = _upload(s3, bucket, "dir/big", two_parts)
    answers = [http.post(f"/{bucket}/dir/big", params={"uploadId": upload_id}, content=_complete_body(parts))
               for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert answers[0].content == answers[1].content
    root = ET.fromstring(answers[1].content)
    assert root.tag == f"{NS}CompleteMultipartUploadResult"
    assert {child.tag[len(NS):]: child.text for child in root} == {
        "Location": f"/{bucket}/dir/big", "Bucket": bucket, "Key": "dir/big", "ETag": _multipart_etag(two_parts)}


@pytest.mark.not_on_origin(reason="moto answers a repeated Complete with the first one's ETag whatever parts it "
                                  "names; over an origin, s3cache passes on what the origin answers")
def test_a_repeated_complete_with_other_parts_is_no_such_upload(http: httpx.Client, s3: Any, bucket: str,
                                                                 two_parts: list[bytes]) -> None:
    upload_id, parts = _upload(s3, bucket, "big", two_parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts})
    for other in (parts[:1], [parts[0], {"PartNumber": 2, "ETag": f'"{hashlib.md5(b"other").hexdigest()}"'}]):
        response = http.post(f"/{bucket}/big", params={"uploadId": upload_id}, content=_complete_body(other))
        assert response.status_code == 404, response.text
        assert _error_body(response) == {"Code": "NoSuchUpload", "Message": NO_SUCH_UPLOAD, "UploadId": upload_id,
                                         "Resource": f"/{bucket}/big"}
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(two_parts)  # untouched


def test_a_complete_of_an_upload_never_created_is_no_such_upload(http: httpx.Client, s3: Any, bucket: str) -> None:
    upload_id = uuid.uuid4().hex
    part = [{"PartNumber": 1, "ETag": f'"{hashlib.md5(b"x").hexdigest()}"'}]
    response = http.post(f"/{bucket}/never", params={"uploadId": upload_id}, content=_complete_body(part))
    assert response.status_code == 404, response.text
    assert _error_body(response) == {"Code": "NoSuchUpload", "Message": NO_SUCH_UPLOAD, "UploadId": upload_id,
                                     "Resource": f"/{bucket}/never"}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="never", UploadId=upload_id, MultipartUpload={"Parts": part})
    assert _error(exc) == (404, "NoSuchUpload", NO_SUCH_UPLOAD)


# ---- 4. a part re-sent while its first upload is still in flight ----------------------------------------------

def test_the_part_that_finishes_last_is_the_part(worker: Worker, s3: Any, bucket: str) -> None:
    """A client sends part 1, times out and sends it again; the first send finishes after the second: S3 keeps
    the one that finished last, and Complete takes that one's ETag (and refuses the other's)."""
    key = "resent"
    upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    first, resent, last = os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB)
    half = threading.Event()
    release = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield first[: len(first) // 2]
        half.set()
        assert release.wait(30)
        yield first[len(first) // 2:]

    answer: dict[str, httpx.Response] = {}

    def send_first() -> None:
        with httpx.Client(base_url=worker.url, headers=AUTH, timeout=60) as client:
            answer["first"] = client.put(f"/{bucket}/{key}", params={"partNumber": "1", "uploadId": upload_id},
                                         content=slow_body(), headers={"content-length": str(len(first))})

    sender = threading.Thread(target=send_first)
    sender.start()
    try:
        assert half.wait(30)
        resent_etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=resent)["ETag"]
        assert resent_etag == f'"{hashlib.md5(resent).hexdigest()}"'
    finally:
        release.set()
        sender.join(60)
    assert answer["first"].status_code == 200, answer["first"].text
    first_etag = answer["first"].headers["etag"]
    assert first_etag == f'"{hashlib.md5(first).hexdigest()}"'
    last_etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=last)["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, first_etag, 5 * MIB),
                                                                         (2, last_etag, MIB)]
    with pytest.raises(ClientError) as exc:  # the part that finished first is no longer the part
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": resent_etag}, {"PartNumber": 2, "ETag": last_etag}]})
    assert _error(exc)[:2] == (400, "InvalidPart")
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first_etag}, {"PartNumber": 2, "ETag": last_etag}]})
    assert done["ETag"] == _multipart_etag([first, last])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == first + last


def test_a_completed_upload_keeps_only_its_completion_record(data_dir: Path, s3: Any, bucket: str,
                                                              two_parts: list[bytes]) -> None:
    """Directory backend: once completed, an upload's staging holds its completion record alone (the parts are
    gone), and a part sent twice left one file of bytes, not two."""
    upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    staging = data_dir / bucket / ".s3cache" / "uploads" / upload_id
    s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"first send" * 1000)
    etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=two_parts[0])["ETag"]
    assert sorted(p.name.split(".")[0] for p in staging.iterdir()) == ["part-00001", "part-00001", "upload"]
    last = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=2, Body=two_parts[1])["ETag"]
    parts = [{"PartNumber": 1, "ETag": etag}, {"PartNumber": 2, "ETag": last}]
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert [p.name for p in staging.iterdir()] == ["completed.json"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"".join(two_parts)


def test_a_complete_the_origin_no_longer_knows_is_answered_from_the_key(backend: str, s3: Any, bucket: str,
                                                                      two_parts: list[bytes]) -> None:
    """Over an origin: an upload the origin does not know (S3 forgets completed uploads) whose parts make the
    ETag the key holds is a Complete that already happened: 200 with that ETag."""
    if backend != "s3":
        pytest.skip("the origin's answer to an upload it no longer has: origin backend only")
    upload_id, parts = _upload(s3, bucket, "big", two_parts)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    forgotten = uuid.uuid4().hex  # what the origin says of an upload it has forgotten: no such upload
    again = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=forgotten,
                                         MultipartUpload={"Parts": parts})
    assert again["ETag"] == done["ETag"] == _multipart_etag(two_parts)
    with pytest.raises(ClientError) as exc:  # other parts: not what the key holds
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=forgotten,
                                     MultipartUpload={"Parts": parts[:1]})
    assert _error(exc) == (404, "NoSuchUpload", NO_SUCH_UPLOAD)
