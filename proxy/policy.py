"""Per-bucket access: a mount's mode (read-write, read-only, write-only) and its allowed users.

Decided once per request, after routing and before the handler, from the operation's name.
"""

from __future__ import annotations

from urllib.parse import unquote

from cache.s3.errors import S3Error
from cache.storage.namespace import Namespace
from proxy.http import Request

WRITES = frozenset({
    "CreateBucket", "DeleteBucket", "PutBucketTagging", "DeleteBucketTagging", "PutObject", "CopyObject",
    "DeleteObject", "DeleteObjects", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
    "CompleteMultipartUpload", "AbortMultipartUpload", "PutObjectTagging", "DeleteObjectTagging",
})
# What a write-only bucket still answers: enough for a job to find it and manage its uploads.
WRITE_ONLY_READS = frozenset({"HeadBucket", "GetBucketLocation", "GetBucketVersioning", "ListMultipartUploads",
                              "ListParts"})


def _denied(request: Request, why: str) -> S3Error:
    return S3Error("AccessDenied", f"Access Denied: {why}")


def _check(namespace: Namespace, request: Request, bucket: str, writing: bool) -> None:
    mount = namespace.mounts.get(bucket)
    if mount is None:
        return  # the default store: no rules of its own
    if mount.users is not None and (request.user or "") not in mount.users:
        raise _denied(request, f"user {request.user or 'anonymous'} may not use bucket {bucket}")
    if writing and mount.mode == "read-only":
        raise _denied(request, f"bucket {bucket} is read-only")
    if not writing and mount.mode == "write-only" and request.operation not in WRITE_ONLY_READS:
        raise _denied(request, f"bucket {bucket} is write-only")


def authorize(namespace: Namespace | None, request: Request) -> None:
    if namespace is None or not request.bucket:
        return
    _check(namespace, request, request.bucket, request.operation in WRITES)
    source = request.headers.get("x-amz-copy-source")
    if source is not None and request.operation in ("CopyObject", "UploadPartCopy"):
        src_bucket = unquote(source.split("?", 1)[0]).lstrip("/").split("/", 1)[0]
        if src_bucket:
            _check(namespace, request, src_bucket, writing=False)
