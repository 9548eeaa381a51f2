"""Conditional writes as S3 judges them: If-None-Match: * and If-Match on PutObject, CopyObject (its destination)
and CompleteMultipartUpload, If-Match on DeleteObject and on each key of DeleteObjects, against the key's object.

Pure: a backend calls ``judge`` while it holds the key (no other write of it can land between the judgement and
the write), so two writers never both win.
"""

from __future__ import annotations

from cache.s3.errors import S3Error, no_such_key
from cache.s3.model import ObjectMeta, WriteConditions


def conflict() -> S3Error:
    """A write of the key held it longer than a conditional write waits: S3's answer to a conflicting operation
    in progress, which the SDKs' guidance retries (PutObject) or starts over (multipart)."""
    return S3Error("ConditionalRequestConflict")


def judge(conditions: WriteConditions, key: str, current: ObjectMeta | None) -> None:
    """Raise what S3 answers when the conditions do not hold for current (None: no object): an existing object
    fails If-None-Match: * (412); If-Match of no object is 404 NoSuchKey, of another ETag 412 ("*" matches any)."""
    if conditions.if_none_match == "*" and current is not None:
        raise S3Error("PreconditionFailed", extra={"Condition": "If-None-Match"})
    if conditions.if_match is not None:
        if current is None:
            raise no_such_key(key)
        if conditions.if_match not in ("*", current.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
