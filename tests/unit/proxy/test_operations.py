"""Routing: (method, path, query, headers) -> the operation's record, 501 for unserved sub-resources, 405 otherwise;
and the records themselves."""

from __future__ import annotations

import pytest

from cache.s3.errors import S3Error
from proxy.http import Request
from proxy.operations import BY_NAME, BY_ROUTE, OPERATIONS, SAFE_METHODS, resolve

COPY = {"x-amz-copy-source": "/src/key"}


def request(method: str, path: str, query: str = "", headers: dict[str, str] | None = None) -> Request:
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def receive() -> dict[str, object]:
        raise AssertionError("routing must not read the body")

    return Request(scope, receive)


def operation(method: str, path: str, query: str = "", headers: dict[str, str] | None = None) -> str:
    return resolve(request(method, path, query, headers)).name


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "expected"),
    [
        # service
        ("GET", "/", "", None, "ListBuckets"),
        # bucket
        ("HEAD", "/b", "", None, "HeadBucket"),
        ("PUT", "/b", "", None, "CreateBucket"),
        ("DELETE", "/b", "", None, "DeleteBucket"),
        ("GET", "/b", "", None, "ListObjects"),
        ("GET", "/b/", "", None, "ListObjects"),  # trailing slash: still the bucket
        ("GET", "/b", "prefix=a%2F&delimiter=%2F&marker=x&max-keys=5", None, "ListObjects"),
        ("GET", "/b", "list-type=2", None, "ListObjectsV2"),
        ("GET", "/b", "list-type=2&continuation-token=abc&start-after=x", None, "ListObjectsV2"),
        ("GET", "/b", "versions", None, "ListObjectVersions"),
        ("GET", "/b", "versions&prefix=a", None, "ListObjectVersions"),
        ("GET", "/b", "location", None, "GetBucketLocation"),
        ("GET", "/b", "versioning", None, "GetBucketVersioning"),
        ("GET", "/b", "uploads", None, "ListMultipartUploads"),
        ("GET", "/b", "uploads=", None, "ListMultipartUploads"),
        ("POST", "/b", "delete", None, "DeleteObjects"),
        ("GET", "/b", "tagging", None, "GetBucketTagging"),
        ("PUT", "/b", "tagging", None, "PutBucketTagging"),
        ("DELETE", "/b", "tagging", None, "DeleteBucketTagging"),
        ("GET", "/b", "cors", None, "GetBucketCors"),
        ("GET", "/b", "policy", None, "GetBucketPolicy"),
        ("GET", "/b", "lifecycle", None, "GetBucketLifecycleConfiguration"),
        ("GET", "/b", "encryption", None, "GetBucketEncryption"),
        ("GET", "/b", "publicAccessBlock", None, "GetPublicAccessBlock"),
        ("GET", "/b", "website", None, "GetBucketWebsite"),
        ("GET", "/b", "replication", None, "GetBucketReplication"),
        ("GET", "/b", "acl", None, "GetBucketAcl"),
        ("PUT", "/b", "acl", None, "PutBucketAcl"),
        ("PUT", "/b", "acl", {"x-amz-acl": "private"}, "PutBucketAcl"),
        ("GET", "/b", "ownershipControls", None, "GetBucketOwnershipControls"),
        # object
        ("GET", "/b/k", "", None, "GetObject"),
        ("GET", "/b/a/b/c.txt", "", None, "GetObject"),
        ("GET", "/b/k", "response-content-type=text%2Fplain", None, "GetObject"),
        ("HEAD", "/b/k", "", None, "HeadObject"),
        ("GET", "/b/k", "partNumber=1", None, "GetObject"),  # a part read
        ("HEAD", "/b/k", "partNumber=2", None, "HeadObject"),
        ("GET", "/b/k", "partNumber=abc", None, "GetObject"),  # the handler answers 400 InvalidArgument
        ("PUT", "/b/k", "", None, "PutObject"),
        ("PUT", "/b/dir/", "", None, "PutObject"),
        ("DELETE", "/b/k", "", None, "DeleteObject"),
        ("PUT", "/b/k", "", COPY, "CopyObject"),
        ("POST", "/b/k", "uploads", None, "CreateMultipartUpload"),
        ("PUT", "/b/k", "partNumber=1&uploadId=abc", None, "UploadPart"),
        ("PUT", "/b/k", "partNumber=2&uploadId=abc", COPY, "UploadPartCopy"),
        ("PUT", "/b/k", "partNumber=2&uploadId=abc", {**COPY, "x-amz-copy-source-range": "bytes=0-9"},
         "UploadPartCopy"),
        ("POST", "/b/k", "uploadId=abc", None, "CompleteMultipartUpload"),
        ("POST", "/b/k", "uploadId=abc", COPY, "CompleteMultipartUpload"),  # only a PUT copies
        ("DELETE", "/b/k", "uploadId=abc", None, "AbortMultipartUpload"),
        ("GET", "/b/k", "uploadId=abc", None, "ListParts"),
        ("GET", "/b/k", "uploadId=abc&max-parts=10&part-number-marker=3", None, "ListParts"),
        ("GET", "/b/k", "tagging", None, "GetObjectTagging"),
        ("PUT", "/b/k", "tagging", None, "PutObjectTagging"),
        ("DELETE", "/b/k", "tagging", None, "DeleteObjectTagging"),
        ("GET", "/b/k", "acl", None, "GetObjectAcl"),
        ("GET", "/b/k", "acl&versionId=null", None, "GetObjectAcl"),
        ("GET", "/b/k", "attributes", None, "GetObjectAttributes"),
        ("GET", "/b/k", "attributes&versionId=null", None, "GetObjectAttributes"),
        ("PUT", "/b/k", "acl", None, "PutObjectAcl"),
        ("PUT", "/b/k", "acl", COPY, "PutObjectAcl"),  # a copy header does not make an ACL a copy
        ("PUT", "/b/k", "tagging", COPY, "PutObjectTagging"),  # a copy header does not make tagging a copy
        # "uploadId" decides over "tagging"
        ("PUT", "/b/k", "tagging&uploadId=abc&partNumber=1", None, "UploadPart"),
        ("GET", "/b/k", "uploadId=abc&tagging", None, "ListParts"),
        ("DELETE", "/b/k", "tagging&uploadId=abc", None, "AbortMultipartUpload"),
        # the key is not a query: "?tagging" in an encoded key is part of the key
        ("GET", "/b/k%3Ftagging", "", None, "GetObject"),
    ],
)
def test_routes(method: str, path: str, query: str, headers: dict[str, str] | None, expected: str) -> None:
    assert operation(method, path, query, headers) == expected


def test_every_route_is_covered_by_the_table_above() -> None:
    covered = {case[-1] for case in _route_cases()}
    assert covered == {op.name for op in OPERATIONS}


def _route_cases() -> list[tuple[object, ...]]:
    marks = test_routes.pytestmark  # type: ignore[attr-defined]
    return [tuple(case) for mark in marks if mark.name == "parametrize" for case in mark.args[1]]


def test_addressing_of_the_request() -> None:
    r = request("GET", "/bucket/a%20b/c%2Fd", "x=1&y")
    assert (r.bucket, r.key, r.level, r.query) == ("bucket", "a b/c/d", "object", {"x": "1", "y": ""})


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("DELETE", "/b", "acl"),  # ACLs are read and (owner-only) put, never deleted
        ("DELETE", "/b/k", "acl"),
        ("PUT", "/b", "ownershipControls"),
        ("DELETE", "/b", "ownershipControls"),
        ("GET", "/b/k", "ownershipControls"),
        ("PUT", "/b", "versioning"),  # PutBucketVersioning: s3cache keeps no versions
        # the configuration probes are answered; setting or deleting a configuration is not
        ("PUT", "/b", "policy"),
        ("DELETE", "/b", "policy"),
        ("PUT", "/b", "cors"),
        ("DELETE", "/b", "cors"),
        ("PUT", "/b", "lifecycle"),
        ("DELETE", "/b", "lifecycle"),
        ("PUT", "/b", "encryption"),
        ("DELETE", "/b", "encryption"),
        ("PUT", "/b", "publicAccessBlock"),
        ("DELETE", "/b", "publicAccessBlock"),
        ("PUT", "/b", "website"),
        ("DELETE", "/b", "website"),
        ("PUT", "/b", "replication"),
        ("DELETE", "/b", "replication"),
        ("POST", "/b", "cors"),  # no such S3 call: still 501, never 405, for a sub-resource served in part
        ("GET", "/b/k", "cors"),  # an object has no CORS configuration: not a GetObject
        ("GET", "/b/k", "policy"),
        ("GET", "/b", "cors&policy"),  # two probes in one request: neither
        ("GET", "/b", "tagging&cors"),
        ("PUT", "/b/k", "cors&uploadId=abc&partNumber=1"),  # not an UploadPart
        ("GET", "/b", "policyStatus"),
        ("GET", "/b", "object-lock"),
        ("GET", "/b/k", "tagging&partNumber=1"),  # partNumber is GetObject's, HeadObject's and UploadPart's only
        ("PUT", "/b/k", "partNumber=1"),  # not an UploadPart without its upload
        ("DELETE", "/b/k", "partNumber=1"),
        ("GET", "/b", "partNumber=1"),  # nor a listing's
        ("PUT", "/b/k", "attributes"),  # GetObjectAttributes is a GET of an object only
        ("GET", "/b", "attributes"),
        ("GET", "/b/k", "attributes&tagging"),
        ("POST", "/b/k", "restore"),
        ("POST", "/b/k", "select&select-type=2"),
        ("PUT", "/b/k", "retention"),
        ("GET", "/b/k", "legal-hold"),
        ("GET", "/b/k", "torrent"),
        ("PUT", "/b/k", "acl&uploadId=abc"),  # only partNumber belongs to UploadPart
        ("GET", "/b/k", "tagging&acl"),
        ("GET", "/", "session"),
    ],
)
def test_unserved_sub_resources_are_501(method: str, path: str, query: str) -> None:
    with pytest.raises(S3Error) as exc:
        operation(method, path, query)
    assert (exc.value.code, exc.value.status) == ("NotImplemented", 501)


@pytest.mark.parametrize(
    ("method", "path", "query", "level"),
    [
        ("PUT", "/", "", "SERVICE"),
        ("DELETE", "/", "", "SERVICE"),
        ("POST", "/", "", "SERVICE"),
        ("GET", "/", "tagging", "SERVICE"),
        ("PATCH", "/b", "", "BUCKET"),
        ("GET", "/b", "delete", "BUCKET"),
        ("PUT", "/b", "uploads", "BUCKET"),
        ("DELETE", "/b", "versions", "BUCKET"),
        ("POST", "/b", "tagging", "BUCKET"),
        ("PATCH", "/b/k", "", "OBJECT"),
        ("POST", "/b/k", "", "OBJECT"),
        ("OPTIONS", "/b/k", "", "OBJECT"),
        ("PUT", "/b/k", "uploads", "OBJECT"),
        ("GET", "/b/k", "uploads", "OBJECT"),
        ("POST", "/b/k", "tagging", "OBJECT"),
        ("POST", "/b/k", "delete", "OBJECT"),
        ("GET", "/b/k", "list-type=2", "OBJECT"),
        ("GET", "/b/k", "location", "OBJECT"),
    ],
)
def test_wrong_methods_are_405(method: str, path: str, query: str, level: str) -> None:
    with pytest.raises(S3Error) as exc:
        operation(method, path, query)
    assert (exc.value.code, exc.value.status) == ("MethodNotAllowed", 405)
    assert exc.value.extra == {"Method": method, "ResourceType": level}


def test_every_record_is_found_by_its_route_and_its_name() -> None:
    assert all(callable(op.handler) for op in OPERATIONS)
    assert {op.route: op for op in OPERATIONS} == BY_ROUTE
    assert {op.name: op for op in OPERATIONS} == BY_NAME
    for op in OPERATIONS:
        method, level, selector = op.route
        assert resolve(request(method, {"service": "/", "bucket": "/b", "object": "/b/k"}[level],
                               selector.removesuffix("+copy"), COPY if op.copies else None)) is op


def test_route_names_are_unique() -> None:
    assert len(BY_NAME) == len(BY_ROUTE) == len(OPERATIONS)


def test_records_are_frozen() -> None:
    with pytest.raises(AttributeError):
        BY_NAME["GetObject"].redirectable = False  # type: ignore[misc]


def test_only_object_reads_are_redirectable() -> None:
    assert {op.name for op in OPERATIONS if op.redirectable} == {"GetObject", "HeadObject"}
    assert all(op.route[1] == "object" and op.method in SAFE_METHODS for op in OPERATIONS if op.redirectable)


def test_writes_are_the_unsafe_methods_and_agree_with_the_access_class() -> None:
    for op in OPERATIONS:
        assert op.writes == (op.method not in SAFE_METHODS), op.name
        if op.access in ("read", "list"):
            assert not op.writes, op.name
        if op.access in ("write", "delete"):
            assert op.writes, op.name
    assert {op.name for op in OPERATIONS if op.copies} == {"CopyObject", "UploadPartCopy"}


def test_write_only_buckets_answer_only_reads_marked_so() -> None:
    marked = [op for op in OPERATIONS if op.write_only_ok]
    assert marked and not any(op.writes for op in marked)  # writes are answered anyway: the flag is for reads
    assert not any(op.access == "read" for op in marked)  # never an object's bytes
