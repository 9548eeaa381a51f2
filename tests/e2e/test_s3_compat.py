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
