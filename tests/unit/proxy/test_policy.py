"""proxy.policy.authorize: a mount's mode (read-write, read-only, write-only) and allowed users, by operation.

Which operations write, and which reads a write-only bucket answers, are read from the operation records
(proxy.operations.OPERATIONS): this file keeps no list of its own."""

from __future__ import annotations

from typing import cast

import pytest

from cache.s3.errors import S3Error
from cache.storage.base import UnderStore
from cache.storage.namespace import Mount, Namespace
from proxy.http import Request
from proxy.operations import BY_NAME, OPERATIONS
from proxy.policy import authorize

ALL = frozenset(op.name for op in OPERATIONS)
WRITES = frozenset(op.name for op in OPERATIONS if op.writes)
READS = ALL - WRITES
WRITE_ONLY_READS = frozenset(op.name for op in OPERATIONS if op.write_only_ok)
STORE = cast(UnderStore, object())  # authorize never touches a store


def namespace() -> Namespace:
    return Namespace([
        Mount("ro", STORE, "ro-target", mode="read-only"),
        Mount("wo", STORE, "wo-target", mode="write-only"),
        Mount("rw", STORE, "rw-target", mode="read-write"),
        Mount("team", STORE, "team-target", users=frozenset({"alice", "bob"})),
        Mount("team-ro", STORE, "t", mode="read-only", users=frozenset({"alice"})),
    ], STORE, default_cached=False)


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b""}


def request(operation: str, bucket: str, key: str = "k", user: str | None = "alice",
            copy_source: str | None = None) -> Request:
    headers = [(b"x-amz-copy-source", copy_source.encode())] if copy_source is not None else []
    path = f"/{bucket}/{key}" if bucket and key else f"/{bucket}"
    req = Request({"method": BY_NAME[operation].method, "path": path, "query_string": b"", "headers": headers},
                  _receive)
    req.operation = operation
    req.user = user
    return req


def denied(operation: str, bucket: str, **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as caught:
        authorize(namespace(), request(operation, bucket, **kwargs), BY_NAME[operation])  # type: ignore[arg-type]
    assert caught.value.code == "AccessDenied" and caught.value.status == 403
    return caught.value


def allowed(operation: str, bucket: str, **kwargs: object) -> None:
    authorize(namespace(), request(operation, bucket, **kwargs), BY_NAME[operation])  # type: ignore[arg-type]


def test_every_operation_is_classified() -> None:
    assert WRITES and READS and not WRITES & READS
    assert WRITE_ONLY_READS and WRITE_ONLY_READS <= READS


@pytest.mark.parametrize("operation", sorted(WRITES))
def test_read_only_refuses_every_write(operation: str) -> None:
    error = denied(operation, "ro")
    assert "read-only" in error.message


@pytest.mark.parametrize("operation", sorted(READS - {"ListBuckets"}))
def test_read_only_allows_reads(operation: str) -> None:
    allowed(operation, "ro")


@pytest.mark.parametrize("operation", sorted(READS - WRITE_ONLY_READS - {"ListBuckets"}))
def test_write_only_refuses_reads(operation: str) -> None:
    error = denied(operation, "wo")
    assert "write-only" in error.message


@pytest.mark.parametrize("operation", sorted(WRITES | WRITE_ONLY_READS))
def test_write_only_allows_writes_and_its_few_reads(operation: str) -> None:
    allowed(operation, "wo")


@pytest.mark.parametrize("operation", sorted(ALL))
def test_read_write_and_unmounted_buckets_allow_everything(operation: str) -> None:
    allowed(operation, "rw", user=None)
    allowed(operation, "default-bucket", user=None)  # served by the default store: no rules of its own
    allowed(operation, "default-bucket", user="mallory")


@pytest.mark.parametrize("operation", ["GetObject", "HeadBucket", "PutObject", "DeleteObject", "ListObjectsV2"])
def test_users_restriction(operation: str) -> None:
    allowed(operation, "team", user="alice")
    allowed(operation, "team", user="bob")
    assert "mallory" in denied(operation, "team", user="mallory").message
    assert "anonymous" in denied(operation, "team", user=None).message


def test_users_and_mode_together() -> None:
    allowed("GetObject", "team-ro", user="alice")
    denied("GetObject", "team-ro", user="bob")
    denied("PutObject", "team-ro", user="alice")


def test_service_level_requests_are_not_bucket_checked() -> None:
    allowed("ListBuckets", "", user=None)


def test_no_namespace_means_no_policy() -> None:
    authorize(None, request("PutObject", "ro"), BY_NAME["PutObject"])


@pytest.mark.parametrize("operation", ["CopyObject", "UploadPartCopy"])
@pytest.mark.parametrize("source", ["/wo/some/key", "wo/some/key", "/wo/some%20key?versionId=null", "wo%2Fkey"])
def test_copy_source_must_be_readable(operation: str, source: str) -> None:
    assert "wo" in denied(operation, "rw", copy_source=source).message


@pytest.mark.parametrize("operation", ["CopyObject", "UploadPartCopy"])
def test_copy_from_readable_sources(operation: str) -> None:
    allowed(operation, "rw", copy_source="/ro/key")
    allowed(operation, "rw", copy_source="/default-bucket/key")
    allowed(operation, "wo", copy_source="/rw/key")  # into a write-only bucket: a write, allowed
    allowed(operation, "rw", copy_source="/team/key", user="alice")
    denied(operation, "rw", copy_source="/team/key", user="mallory")
    denied(operation, "ro", copy_source="/rw/key")  # the destination is read-only


def test_copy_source_header_is_ignored_by_other_operations() -> None:
    allowed("PutObject", "rw", copy_source="/wo/key")
