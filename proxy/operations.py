"""The S3 operation table: one record per operation s3cache serves, found by (method, level, sub-resource).

A record (``Operation``) holds all that is known of an operation: its AWS name, its route, its handler, its
access class, whether a write-only bucket answers it and whether it may be redirected. Routing, access
policy, redirects, logs and metrics all read it; nothing keeps a list of operation names of its own.

``level`` is service (``/``), bucket (``/b``) or object (``/b/k``). The sub-resource is the query keyword
that selects an operation (``?tagging``, ``?uploads``, ``?uploadId=``...); a PUT that carries
``x-amz-copy-source`` is a copy, marked by a ``+copy`` suffix. Sub-resources S3 has and s3cache does
not are answered 501 NotImplemented; a method a resource does not take, 405 MethodNotAllowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from cache.s3.errors import S3Error
from proxy.context import Context
from proxy.handlers import acl, attributes, buckets, listings, multipart, objects, tagging
from proxy.headers import COPY_SOURCE
from proxy.http import Request, Response

Handler = Callable[[Context, Request], Awaitable[Response]]
Level = Literal["service", "bucket", "object"]
RouteKey = tuple[str, Level, str]  # (method, level, selector)
# What an operation does to the data, for access rules: "read" an object's bytes or metadata; "list" a bucket
# (or the buckets), including the bucket-level probes clients make to find one (HeadBucket, GetBucketLocation,
# GetBucketVersioning); "write" an object (or create a bucket); "delete" objects (or a bucket); anything of a
# "multipart" upload; "tagging" of an object or a bucket; the "acl" of one (never more than the owner's, but a
# PutBucketAcl is a write all the same). Whether it changes anything is `Operation.writes`.
Access = Literal["read", "list", "write", "delete", "multipart", "tagging", "acl"]
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Operation:
    """One S3 operation s3cache serves: everything routing, policy, redirects and metrics know about it."""

    name: str  # the AWS operation name, verbatim: what logs and metrics show
    route: RouteKey
    handler: Handler
    access: Access
    write_only_ok: bool = False  # a read a write-only bucket still answers (every write it answers anyway)
    # may get a 307 to the worker holding its bytes (cluster.data_path), whose token then admits it there
    redirectable: bool = False
    per_key: bool = False  # names many keys in its body, and its handler asks the access policy for each one
    prefix_scoped: bool = False  # a listing: the access policy judges it on its prefix parameter

    @property
    def level(self) -> str:
        return self.route[1]

    @property
    def method(self) -> str:
        return self.route[0]

    @property
    def writes(self) -> bool:
        """True when it changes a bucket, an object, its tags or an upload: exactly the operations that are
        not GET or HEAD (DeleteObjects and the multipart POSTs write; nothing s3cache serves reads by POST)."""
        return self.route[0] not in SAFE_METHODS

    @property
    def copies(self) -> bool:
        """Reads the object ``x-amz-copy-source`` names (CopyObject, UploadPartCopy), so it reads that bucket too."""
        return self.route[2].endswith("+copy")


OPERATIONS: tuple[Operation, ...] = (
    # service
    Operation("ListBuckets", ("GET", "service", ""), buckets.list_buckets, "list"),
    # bucket
    Operation("HeadBucket", ("HEAD", "bucket", ""), buckets.head_bucket, "list", write_only_ok=True),
    Operation("CreateBucket", ("PUT", "bucket", ""), buckets.create_bucket, "write"),
    Operation("DeleteBucket", ("DELETE", "bucket", ""), buckets.delete_bucket, "delete"),
    Operation("ListObjects", ("GET", "bucket", ""), listings.list_objects, "list", prefix_scoped=True),
    Operation("ListObjectsV2", ("GET", "bucket", "list-type"), listings.list_objects_v2, "list", prefix_scoped=True),
    Operation("ListObjectVersions", ("GET", "bucket", "versions"), listings.list_object_versions, "list",
              prefix_scoped=True),
    Operation("GetBucketLocation", ("GET", "bucket", "location"), buckets.get_bucket_location, "list",
              write_only_ok=True),
    Operation("GetBucketVersioning", ("GET", "bucket", "versioning"), buckets.get_bucket_versioning, "list",
              write_only_ok=True),
    # configurations s3cache never holds: each Get answers S3's error for a bucket without one
    Operation("GetBucketCors", ("GET", "bucket", "cors"), buckets.get_bucket_cors, "list", write_only_ok=True),
    Operation("GetBucketPolicy", ("GET", "bucket", "policy"), buckets.get_bucket_policy, "list", write_only_ok=True),
    Operation("GetBucketLifecycleConfiguration", ("GET", "bucket", "lifecycle"), buckets.get_bucket_lifecycle, "list",
              write_only_ok=True),
    Operation("GetBucketEncryption", ("GET", "bucket", "encryption"), buckets.get_bucket_encryption, "list",
              write_only_ok=True),
    Operation("GetPublicAccessBlock", ("GET", "bucket", "publicAccessBlock"), buckets.get_public_access_block,
              "list", write_only_ok=True),
    Operation("GetBucketWebsite", ("GET", "bucket", "website"), buckets.get_bucket_website, "list",
              write_only_ok=True),
    Operation("GetBucketReplication", ("GET", "bucket", "replication"), buckets.get_bucket_replication, "list",
              write_only_ok=True),
    Operation("ListMultipartUploads", ("GET", "bucket", "uploads"), multipart.list_multipart_uploads, "multipart",
              write_only_ok=True, prefix_scoped=True),
    Operation("DeleteObjects", ("POST", "bucket", "delete"), objects.delete_objects, "delete", per_key=True),
    Operation("GetBucketTagging", ("GET", "bucket", "tagging"), tagging.get_bucket_tagging, "tagging"),
    Operation("PutBucketTagging", ("PUT", "bucket", "tagging"), tagging.put_bucket_tagging, "tagging"),
    Operation("DeleteBucketTagging", ("DELETE", "bucket", "tagging"), tagging.delete_bucket_tagging, "tagging"),
    Operation("GetBucketAcl", ("GET", "bucket", "acl"), acl.get_bucket_acl, "acl", write_only_ok=True),
    Operation("PutBucketAcl", ("PUT", "bucket", "acl"), acl.put_bucket_acl, "acl"),
    Operation("GetBucketOwnershipControls", ("GET", "bucket", "ownershipControls"),
              acl.get_bucket_ownership_controls, "list", write_only_ok=True),
    # object
    Operation("GetObject", ("GET", "object", ""), objects.get_object, "read", redirectable=True),
    Operation("HeadObject", ("HEAD", "object", ""), objects.head_object, "read", redirectable=True),
    Operation("PutObject", ("PUT", "object", ""), objects.put_object, "write"),
    Operation("CopyObject", ("PUT", "object", "+copy"), objects.copy_object, "write"),
    Operation("DeleteObject", ("DELETE", "object", ""), objects.delete_object, "delete"),
    Operation("CreateMultipartUpload", ("POST", "object", "uploads"), multipart.create_multipart_upload,
              "multipart"),
    Operation("UploadPart", ("PUT", "object", "uploadId"), multipart.upload_part, "multipart"),
    Operation("UploadPartCopy", ("PUT", "object", "uploadId+copy"), multipart.upload_part_copy, "multipart"),
    Operation("CompleteMultipartUpload", ("POST", "object", "uploadId"), multipart.complete_multipart_upload,
              "multipart"),
    Operation("AbortMultipartUpload", ("DELETE", "object", "uploadId"), multipart.abort_multipart_upload,
              "multipart"),
    Operation("ListParts", ("GET", "object", "uploadId"), multipart.list_parts, "multipart", write_only_ok=True),
    Operation("GetObjectTagging", ("GET", "object", "tagging"), tagging.get_object_tagging, "tagging"),
    Operation("PutObjectTagging", ("PUT", "object", "tagging"), tagging.put_object_tagging, "tagging"),
    Operation("DeleteObjectTagging", ("DELETE", "object", "tagging"), tagging.delete_object_tagging, "tagging"),
    Operation("GetObjectAcl", ("GET", "object", "acl"), acl.get_object_acl, "acl"),
    Operation("GetObjectAttributes", ("GET", "object", "attributes"), attributes.get_object_attributes, "read"),
    Operation("PutObjectAcl", ("PUT", "object", "acl"), acl.put_object_acl, "acl"),
)
BY_ROUTE: dict[tuple[str, str, str], Operation] = {operation.route: operation for operation in OPERATIONS}  # dispatch
BY_NAME: dict[str, Operation] = {operation.name: operation for operation in OPERATIONS}

# Sub-resources s3cache answers only a call or two of (the configuration probes, ACLs, GetObjectAttributes): one of
# them is the request's only selector, or the request is 501 (``?acl&uploadId=`` is not an UploadPart).
EXCLUSIVE = frozenset({
    "acl", "attributes", "cors", "encryption", "lifecycle", "ownershipControls", "policy", "publicAccessBlock",
    "replication", "website",
})
# Query keywords that select an operation, in the order they decide ("uploadId" wins over "tagging").
SELECTORS = ("uploadId", "uploads", "tagging", "delete", "list-type", "versions", "location", "versioning",
             *sorted(EXCLUSIVE))

# S3 sub-resources s3cache does not serve: asking for one is 501, never a silent wrong answer. partNumber is
# served by GetObject and HeadObject (a part read) and UploadPart (ListParts takes it too); 501 anywhere else.
UNSUPPORTED = frozenset({
    "accelerate", "analytics", "intelligent-tiering", "inventory", "legal-hold", "logging",
    "metadataTable", "metrics", "notification", "object-lock", "partNumber", "policyStatus", "requestPayment",
    "restore", "retention", "select", "session", "torrent", "renameObject",
})
# S3 operations on sub-resources s3cache serves only in part: also 501, not 405 (a method S3 does not have).
# Any other method or level of an EXCLUSIVE sub-resource is 501 as well.
UNSUPPORTED_ROUTES = {
    ("PUT", "bucket", "versioning"): "PutBucketVersioning",
    ("PUT", "bucket", "cors"): "PutBucketCors",
    ("DELETE", "bucket", "cors"): "DeleteBucketCors",
    ("PUT", "bucket", "policy"): "PutBucketPolicy",
    ("DELETE", "bucket", "policy"): "DeleteBucketPolicy",
    ("PUT", "bucket", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("DELETE", "bucket", "lifecycle"): "DeleteBucketLifecycle",
    ("PUT", "bucket", "encryption"): "PutBucketEncryption",
    ("DELETE", "bucket", "encryption"): "DeleteBucketEncryption",
    ("PUT", "bucket", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "bucket", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("PUT", "bucket", "website"): "PutBucketWebsite",
    ("DELETE", "bucket", "website"): "DeleteBucketWebsite",
    ("PUT", "bucket", "replication"): "PutBucketReplication",
    ("DELETE", "bucket", "replication"): "DeleteBucketReplication",
    ("PUT", "bucket", "ownershipControls"): "PutBucketOwnershipControls",
    ("DELETE", "bucket", "ownershipControls"): "DeleteBucketOwnershipControls",
}


def _not_implemented(name: str, method: str) -> S3Error:
    return S3Error("NotImplemented", f"The '{name}' sub-resource is not implemented by s3cache",
                   extra={"Method": method, "ResourceType": name})


def resolve(request: Request) -> Operation:
    """The operation a request asks for, or an S3Error saying why there is none."""
    query = request.query
    selector = ""
    if query:
        for name in SELECTORS:
            if name in query:
                selector = name
                break
        unsupported = set(UNSUPPORTED.intersection(query)) | (EXCLUSIVE.intersection(query) - {selector})
        if selector == "uploadId" or (selector == "" and request.method in SAFE_METHODS and request.level == "object"):
            unsupported.discard("partNumber")  # UploadPart's own parameter; GetObject's and HeadObject's: a part read
        if unsupported:
            raise _not_implemented(sorted(unsupported)[0], request.method)
    if request.method == "PUT" and COPY_SOURCE in request.headers and selector in ("", "uploadId"):
        selector += "+copy"
    level = request.level
    operation = BY_ROUTE.get((request.method, level, selector))
    if operation is not None:
        return operation
    unserved = UNSUPPORTED_ROUTES.get((request.method, level, selector))
    if unserved is not None:
        raise S3Error("NotImplemented", f"{unserved} is not implemented by s3cache",
                      extra={"Method": request.method, "ResourceType": selector})
    if selector in EXCLUSIVE:
        raise _not_implemented(selector, request.method)
    raise S3Error("MethodNotAllowed", extra={"Method": request.method, "ResourceType": level.upper()})
