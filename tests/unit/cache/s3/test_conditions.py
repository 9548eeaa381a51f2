"""Conditional writes judged as S3 judges them, against the key's current object (None: there is none)."""

from __future__ import annotations

import pytest

from cache.s3.conditions import conflict, judge
from cache.s3.errors import S3Error
from cache.s3.model import UNCONDITIONAL, ObjectMeta, WriteConditions

CURRENT = ObjectMeta(key="k", size=1, etag="abc", last_modified=0.0)


@pytest.mark.parametrize(("conditions", "current", "answer"), [
    (UNCONDITIONAL, CURRENT, None),
    (UNCONDITIONAL, None, None),
    (WriteConditions(if_none_match="*"), None, None),
    (WriteConditions(if_none_match="*"), CURRENT, (412, "PreconditionFailed", "If-None-Match")),
    (WriteConditions(if_match="abc"), CURRENT, None),
    (WriteConditions(if_match="*"), CURRENT, None),
    (WriteConditions(if_match="abd"), CURRENT, (412, "PreconditionFailed", "If-Match")),
    (WriteConditions(if_match="abc"), None, (404, "NoSuchKey", None)),
    (WriteConditions(if_match="*"), None, (404, "NoSuchKey", None)),
    # both at once: no object fails If-Match, an object fails If-None-Match first
    (WriteConditions(if_match="abc", if_none_match="*"), CURRENT, (412, "PreconditionFailed", "If-None-Match")),
])
def test_judge(conditions: WriteConditions, current: ObjectMeta | None,
               answer: tuple[int, str, str | None] | None) -> None:
    if answer is None:
        judge(conditions, "k", current)
        return
    with pytest.raises(S3Error) as exc:
        judge(conditions, "k", current)
    assert (exc.value.status, exc.value.code, exc.value.extra.get("Condition")) == answer


def test_given_and_conflict() -> None:
    assert not UNCONDITIONAL.given
    assert WriteConditions(if_match="x").given and WriteConditions(if_none_match="*").given
    assert (conflict().status, conflict().code) == (409, "ConditionalRequestConflict")
