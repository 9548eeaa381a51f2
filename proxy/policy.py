"""Per-bucket access: a mount's mode (read-write, read-only, write-only) and its allowed users.

Decided once per request, after routing and before the handler, from the operation's record
(proxy.operations.Operation, which sits above this module and is read through the Protocol below):
whether it writes, whether a write-only bucket still answers it, whether it reads a copy source.
"""

from __future__ import annotations

from typing import Protocol

from cache.s3.errors import S3Error
from cache.storage.namespace import Namespace
from proxy.headers import COPY_SOURCE, split_copy_source
from proxy.http import Request


class Operation(Protocol):
    """What access rules read of an operation's record."""

    @property
    def writes(self) -> bool: ...

    @property
    def write_only_ok(self) -> bool: ...  # a read a write-only bucket still answers

    @property
    def copies(self) -> bool: ...  # reads the object x-amz-copy-source names


def _denied(why: str) -> S3Error:
    return S3Error("AccessDenied", f"Access Denied: {why}")


def _check(namespace: Namespace, request: Request, bucket: str, writing: bool, write_only_ok: bool) -> None:
    mount = namespace.mounts.get(bucket)
    if mount is None:
        return  # the default store: no rules of its own
    if mount.users is not None and (request.user or "") not in mount.users:
        raise _denied(f"user {request.user or 'anonymous'} may not use bucket {bucket}")
    if writing and mount.mode == "read-only":
        raise _denied(f"bucket {bucket} is read-only")
    if not writing and mount.mode == "write-only" and not write_only_ok:
        raise _denied(f"bucket {bucket} is write-only")


def authorize(namespace: Namespace | None, request: Request, operation: Operation) -> None:
    if namespace is None or not request.bucket:
        return
    _check(namespace, request, request.bucket, operation.writes, operation.write_only_ok)
    source = request.headers.get(COPY_SOURCE)
    if source is not None and operation.copies:
        src_bucket = split_copy_source(source)[0]
        if src_bucket:  # none named: the copy itself refuses it
            _check(namespace, request, src_bucket, writing=False, write_only_ok=False)
