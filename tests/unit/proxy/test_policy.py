"""proxy.policy.authorize with the rules a mount's mode (read-write, read-only, write-only) and users map onto.

Which operations write, and which reads a write-only bucket answers, are read from the operation records
(proxy.operations.OPERATIONS): this file keeps no list of its own. The policy file's rules: test_policyfile.py."""

from __future__ import annotations

from typing import Any

import pytest

from cache.s3.errors import S3Error
from conf.settings import MountSettings
from proxy.http import Request
from proxy.operations import BY_NAME, OPERATIONS
from proxy.policy import OPEN, Policy, authorize, denied_keys
from proxy.policyfile import mount_rules

ALL = frozenset(op.name for op in OPERATIONS)
PER_KEY = frozenset(op.name for op in OPERATIONS if op.per_key)  # judged key by key: denied_keys
WRITES = frozenset(op.name for op in OPERATIONS if op.writes)
READS = ALL - WRITES
WRITE_ONLY_READS = frozenset(op.name for op in OPERATIONS if op.write_only_ok)


def policy() -> Policy:
    mounts = [
        MountSettings(bucket="ro", uri="s3://ro-target", mode="read-only"),
        MountSettings(bucket="wo", uri="s3://wo-target", mode="write-only"),
        MountSettings(bucket="rw", uri="s3://rw-target", mode="read-write"),
        MountSettings(bucket="team", uri="s3://team-target", users=["alice", "bob"]),
        MountSettings(bucket="team-ro", uri="s3://t", mode="read-only", users=["alice"]),
    ]
    return Policy(mount_rules(mounts, OPERATIONS))


async def _receive() -> dict[str, object]:
    return {"type": "http.request", "body": b""}


def request(operation: str, bucket: str, key: str = "k", user: str | None = "alice",
            copy_source: str | None = None) -> Request:
    headers = [(b"x-amz-copy-source", copy_source.encode())] if copy_source is not None else []
    level = BY_NAME[operation].route[1]
    path = f"/{bucket}/{key}" if level == "object" else f"/{bucket}" if level == "bucket" else "/"
    req = Request({"method": BY_NAME[operation].method, "path": path, "query_string": b"", "headers": headers},
                  _receive)
    req.operation = operation
    req.user = user
    return req


def denied(operation: str, bucket: str, **kwargs: Any) -> S3Error:
    if operation in PER_KEY:
        assert denied_keys(policy(), request(operation, bucket, **kwargs), operation, ["k"]) == {"k"}
        decision = policy().decide(kwargs.get("user", "alice"), (), operation, bucket, "k")
        return S3Error("AccessDenied", decision.reason if decision.told else "Access Denied")
    with pytest.raises(S3Error) as caught:
        authorize(policy(), request(operation, bucket, **kwargs), BY_NAME[operation])
    assert caught.value.code == "AccessDenied" and caught.value.status == 403
    return caught.value


def allowed(operation: str, bucket: str, **kwargs: Any) -> None:
    if operation in PER_KEY:
        assert denied_keys(policy(), request(operation, bucket, **kwargs), operation, ["k"]) == set()
    authorize(policy(), request(operation, bucket, **kwargs), BY_NAME[operation])


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
    assert denied(operation, "team", user="mallory").message == "Access Denied"  # who may is not told
    assert denied(operation, "team", user=None).message == "Access Denied"


def test_users_and_mode_together() -> None:
    allowed("GetObject", "team-ro", user="alice")
    denied("GetObject", "team-ro", user="bob")
    denied("PutObject", "team-ro", user="alice")


def test_service_level_requests_are_not_bucket_checked() -> None:
    allowed("ListBuckets", "", user=None)


def test_no_policy_file_and_no_mounts_allow_everything() -> None:
    assert OPEN.open and not policy().open
    authorize(OPEN, request("PutObject", "ro"), BY_NAME["PutObject"])
    assert denied_keys(OPEN, request("DeleteObjects", "ro"), "DeleteObjects", ["a", "b"]) == set()


def test_delete_objects_is_judged_per_key_not_up_front() -> None:
    authorize(policy(), request("DeleteObjects", "ro"), BY_NAME["DeleteObjects"])  # the handler asks per key
    assert denied_keys(policy(), request("DeleteObjects", "ro"), "DeleteObjects", ["a", "b"]) == {"a", "b"}


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
