"""The S3 operation table: (method, level, sub-resource) -> AWS operation name -> handler.

``level`` is service (``/``), bucket (``/b``) or object (``/b/k``). The sub-resource is the query keyword
that selects an operation (``?tagging``, ``?uploads``, ``?uploadId=``...); a PUT that carries
``x-amz-copy-source`` is a copy, marked by a ``+copy`` suffix. Sub-resources S3 has and s3cache does
not are answered 501 NotImplemented; a method a resource does not take, 405 MethodNotAllowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cache.s3.errors import S3Error
from proxy.context import Context
from proxy.handlers import buckets, listings, multipart, objects, tagging
from proxy.http import Request, Response

Handler = Callable[[Context, Request], Awaitable[Response]]

ROUTES: dict[tuple[str, str, str], str] = {
    ("GET", "service", ""): "ListBuckets",
    ("HEAD", "bucket", ""): "HeadBucket",
    ("PUT", "bucket", ""): "CreateBucket",
    ("DELETE", "bucket", ""): "DeleteBucket",
    ("GET", "bucket", ""): "ListObjects",
    ("GET", "bucket", "list-type"): "ListObjectsV2",
    ("GET", "bucket", "versions"): "ListObjectVersions",
    ("GET", "bucket", "location"): "GetBucketLocation",
    ("GET", "bucket", "versioning"): "GetBucketVersioning",
    ("GET", "bucket", "uploads"): "ListMultipartUploads",
    ("POST", "bucket", "delete"): "DeleteObjects",
    ("GET", "bucket", "tagging"): "GetBucketTagging",
    ("PUT", "bucket", "tagging"): "PutBucketTagging",
    ("DELETE", "bucket", "tagging"): "DeleteBucketTagging",
    ("GET", "object", ""): "GetObject",
    ("HEAD", "object", ""): "HeadObject",
    ("PUT", "object", ""): "PutObject",
    ("PUT", "object", "+copy"): "CopyObject",
    ("DELETE", "object", ""): "DeleteObject",
    ("POST", "object", "uploads"): "CreateMultipartUpload",
    ("PUT", "object", "uploadId"): "UploadPart",
    ("PUT", "object", "uploadId+copy"): "UploadPartCopy",
    ("POST", "object", "uploadId"): "CompleteMultipartUpload",
    ("DELETE", "object", "uploadId"): "AbortMultipartUpload",
    ("GET", "object", "uploadId"): "ListParts",
    ("GET", "object", "tagging"): "GetObjectTagging",
    ("PUT", "object", "tagging"): "PutObjectTagging",
    ("DELETE", "object", "tagging"): "DeleteObjectTagging",
}

HANDLERS: dict[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "HeadBucket": buckets.head_bucket,
    "CreateBucket": buckets.create_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "GetBucketVersioning": buckets.get_bucket_versioning,
    "ListObjects": listings.list_objects,
    "ListObjectsV2": listings.list_objects_v2,
    "ListObjectVersions": listings.list_object_versions,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "PutObject": objects.put_object,
    "CopyObject": objects.copy_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "GetObjectTagging": tagging.get_object_tagging,
    "PutObjectTagging": tagging.put_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
    "GetBucketTagging": tagging.get_bucket_tagging,
    "PutBucketTagging": tagging.put_bucket_tagging,
    "DeleteBucketTagging": tagging.delete_bucket_tagging,
}

# Query keywords that select an operation, in the order they decide ("uploadId" wins over "tagging").
SELECTORS = ("uploadId", "uploads", "tagging", "delete", "list-type", "versions", "location", "versioning")

# S3 sub-resources s3cache does not serve: asking for one is 501, never a silent wrong answer.
UNSUPPORTED = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "encryption", "intelligent-tiering", "inventory",
    "legal-hold", "lifecycle", "logging", "metadataTable", "metrics", "notification", "object-lock",
    "ownershipControls", "partNumber", "policy", "policyStatus", "publicAccessBlock", "replication",
    "requestPayment", "restore", "retention", "select", "session", "torrent", "website", "renameObject",
})
# S3 operations on sub-resources s3cache serves only in part: also 501, not 405 (a method S3 does not have).
UNSUPPORTED_ROUTES = {
    ("PUT", "bucket", "versioning"): "PutBucketVersioning",
}


def resolve(request: Request) -> str:
    """The AWS operation name of a request, or an S3Error saying why there is none."""
    query = request.query
    selector = ""
    if query:
        for name in SELECTORS:
            if name in query:
                selector = name
                break
        unsupported = set(UNSUPPORTED.intersection(query))
        if selector == "uploadId":
            unsupported.discard("partNumber")  # UploadPart's own parameter
        if unsupported:
            name = sorted(unsupported)[0]
            raise S3Error("NotImplemented", f"The '{name}' sub-resource is not implemented by s3cache",
                          extra={"Method": request.method, "ResourceType": name})
    if request.method == "PUT" and "x-amz-copy-source" in request.headers and selector in ("", "uploadId"):
        selector += "+copy"
    operation = ROUTES.get((request.method, request.level, selector))
    unserved = UNSUPPORTED_ROUTES.get((request.method, request.level, selector)) if operation is None else None
    if unserved is not None:
        raise S3Error("NotImplemented", f"{unserved} is not implemented by s3cache",
                      extra={"Method": request.method, "ResourceType": selector})
    if operation is None:
        raise S3Error("MethodNotAllowed", extra={"Method": request.method, "ResourceType": request.level.upper()})
    return operation
