"""S3 as today's SDKs speak it, through a real worker over both backends (the AWS S3 API reference is the
contract): the calls SDKs and tools make besides reads and writes, and the retries they make.

1. ACLs are answered as a bucket whose Object Ownership is BucketOwnerEnforced answers them.
2. The configuration probes (CORS, policy, lifecycle, encryption, ...) answer S3's "not configured" errors.
3. A CompleteMultipartUpload retried after a lost answer is 200 with the same ETag; an unknown upload is 404.
4. A part re-sent while its first upload is still in flight: the one that finishes last is the part.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
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
