"""Range and conditional GET/HEAD/copy-source rules (RFC 9110 sections 13-14, as S3 applies them)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from cache.s3.errors import S3Error
from cache.s3.model import ObjectMeta
from proxy.conditions import check_preconditions, parse_range

# ---- Range ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 1)),  # first byte only: last-pos is inclusive
        ("bytes=0-9", 10, (0, 10)),
        ("bytes=2-5", 10, (2, 6)),
        ("bytes=9-9", 10, (9, 10)),  # last byte
        ("bytes=3-", 10, (3, 10)),  # open-ended
        ("bytes=0-", 10, (0, 10)),
        ("bytes=9-", 10, (9, 10)),
        ("bytes=-1", 10, (9, 10)),  # suffix: the last byte
        ("bytes=-4", 10, (6, 10)),
        ("bytes=-10", 10, (0, 10)),
        ("bytes=-11", 10, (0, 10)),  # suffix longer than the object: the whole object
        ("bytes=-999999999999", 10, (0, 10)),
        ("bytes=5-100", 10, (5, 10)),  # last-pos past the end is clamped to the end
        ("bytes=0-18446744073709551616", 3, (0, 3)),
        ("bytes = 1 - 2", 10, (1, 3)),  # optional whitespace around the tokens
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


def test_no_range_header_is_the_whole_object() -> None:
    assert parse_range(None, 10) is None


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",  # last-pos < first-pos: invalid range-spec, the header is ignored
        "bytes=-",
        "bytes=",
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=0-1,3-4",  # S3 serves no multipart/byteranges: ignored, whole object
        "bytes=-1,-2",
        "items=0-1",  # another range unit
        "0-1",
        "",
        "bytes=1.5-2",
        "bytes=--1",
    ],
)
def test_invalid_or_multi_range_headers_are_ignored(header: str) -> None:
    assert parse_range(header, 10) is None


def _assert_416(exc: pytest.ExceptionInfo[S3Error], size: int) -> None:
    assert exc.value.code == "InvalidRange"
    assert exc.value.status == 416
    assert exc.value.headers["content-range"] == f"bytes */{size}"
    assert exc.value.extra.get("ActualObjectSize") == str(size)


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),  # first-pos == size
        ("bytes=10-20", 10),
        ("bytes=11-12", 10),
        ("bytes=1000-", 10),
        ("bytes=-0", 10),  # a zero-length suffix is never satisfiable
        ("bytes=0-", 0),  # nothing of an empty object can be selected
        ("bytes=0-0", 0),
        ("bytes=-1", 0),
        ("bytes=-0", 0),
    ],
)
def test_unsatisfiable_ranges_are_416_with_content_range(header: str, size: int) -> None:
    with pytest.raises(S3Error) as exc:
        parse_range(header, size)
    _assert_416(exc, size)


def test_ignored_range_on_an_empty_object_is_not_an_error() -> None:
    assert parse_range("bytes=0-1,2-3", 0) is None
    assert parse_range(None, 0) is None


# ---- preconditions ---------------------------------------------------------------------------------

ETAG = "9b2cf535f27731c974343645a3985328"
OTHER = "0123456789abcdef0123456789abcdef"
MODIFIED = 1_700_000_000.75  # fractional seconds: HTTP dates have whole seconds
META = ObjectMeta(key="k", size=3, etag=ETAG, last_modified=MODIFIED)
WHOLE = int(MODIFIED)


def date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


BEFORE = date(WHOLE - 60)
SAME = date(WHOLE)  # equal to Last-Modified once truncated to seconds
AFTER = date(WHOLE + 60)


def outcome(headers: dict[str, str], prefix: str = "") -> str:
    try:
        check_preconditions(headers, META, prefix)
    except S3Error as exc:
        return f"{exc.status} {exc.code}"
    return "200"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "200"),
        # If-Match: strong ETag list; "*" matches any current representation
        ({"if-match": f'"{ETAG}"'}, "200"),
        ({"if-match": ETAG}, "200"),  # S3 accepts an unquoted ETag
        ({"if-match": f'"{OTHER}"'}, "412 PreconditionFailed"),
        ({"if-match": f'"{OTHER}", "{ETAG}"'}, "200"),
        ({"if-match": f'"{OTHER}","{OTHER[::-1]}"'}, "412 PreconditionFailed"),
        ({"if-match": "*"}, "200"),
        # If-Unmodified-Since
        ({"if-unmodified-since": AFTER}, "200"),
        ({"if-unmodified-since": SAME}, "200"),
        ({"if-unmodified-since": BEFORE}, "412 PreconditionFailed"),
        # If-None-Match: GET/HEAD answer 304 when it matches
        ({"if-none-match": f'"{ETAG}"'}, "304 NotModified"),
        ({"if-none-match": f'"{OTHER}"'}, "200"),
        ({"if-none-match": f'"{OTHER}", "{ETAG}"'}, "304 NotModified"),
        ({"if-none-match": "*"}, "304 NotModified"),
        ({"if-none-match": f'W/"{ETAG}"'}, "304 NotModified"),  # weak comparison for If-None-Match
        # If-Modified-Since
        ({"if-modified-since": BEFORE}, "200"),
        ({"if-modified-since": SAME}, "304 NotModified"),
        ({"if-modified-since": AFTER}, "304 NotModified"),
        # unparseable dates are ignored (RFC 9110 13.1.3/13.1.4)
        ({"if-modified-since": "yesterday"}, "200"),
        ({"if-unmodified-since": "not a date"}, "200"),
        ({"if-modified-since": ""}, "200"),
        # precedence: If-Match decides and If-Unmodified-Since is not evaluated (S3 GetObject docs)
        ({"if-match": f'"{ETAG}"', "if-unmodified-since": BEFORE}, "200"),
        ({"if-match": f'"{OTHER}"', "if-unmodified-since": AFTER}, "412 PreconditionFailed"),
        # precedence: If-None-Match decides and If-Modified-Since is not evaluated
        ({"if-none-match": f'"{ETAG}"', "if-modified-since": BEFORE}, "304 NotModified"),
        ({"if-none-match": f'"{OTHER}"', "if-modified-since": AFTER}, "200"),
        # a failed If-Match / If-Unmodified-Since is 412 even when If-None-Match would give 304
        ({"if-match": f'"{OTHER}"', "if-none-match": f'"{ETAG}"'}, "412 PreconditionFailed"),
        ({"if-unmodified-since": BEFORE, "if-modified-since": AFTER}, "412 PreconditionFailed"),
        ({"if-match": f'"{ETAG}"', "if-none-match": f'"{ETAG}"'}, "304 NotModified"),
        ({"if-match": f'"{ETAG}"', "if-modified-since": AFTER}, "304 NotModified"),
    ],
)
def test_get_preconditions(headers: dict[str, str], expected: str) -> None:
    assert outcome(headers) == expected


def test_not_modified_carries_etag_and_last_modified() -> None:
    with pytest.raises(S3Error) as exc:
        check_preconditions({"if-none-match": f'"{ETAG}"'}, META)
    assert exc.value.status == 304
    assert exc.value.headers["etag"] == f'"{ETAG}"'
    assert exc.value.headers["last-modified"] == SAME


def test_precondition_failed_names_the_condition() -> None:
    with pytest.raises(S3Error) as exc:
        check_preconditions({"if-match": f'"{OTHER}"'}, META)
    assert exc.value.extra.get("Condition") == "If-Match"
    with pytest.raises(S3Error) as exc:
        check_preconditions({"if-unmodified-since": BEFORE}, META)
    assert exc.value.extra.get("Condition") == "If-Unmodified-Since"


CS = "x-amz-copy-source-"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "200"),
        ({CS + "if-match": f'"{ETAG}"'}, "200"),
        ({CS + "if-match": f'"{OTHER}"'}, "412 PreconditionFailed"),
        ({CS + "if-match": "*"}, "200"),
        ({CS + "if-unmodified-since": AFTER}, "200"),
        ({CS + "if-unmodified-since": BEFORE}, "412 PreconditionFailed"),
        # CopyObject: the source's If-None-Match / If-Modified-Since failing is 412, never 304
        ({CS + "if-none-match": f'"{ETAG}"'}, "412 PreconditionFailed"),
        ({CS + "if-none-match": "*"}, "412 PreconditionFailed"),
        ({CS + "if-none-match": f'"{OTHER}"'}, "200"),
        ({CS + "if-modified-since": SAME}, "412 PreconditionFailed"),
        ({CS + "if-modified-since": AFTER}, "412 PreconditionFailed"),
        ({CS + "if-modified-since": BEFORE}, "200"),
        # the CopyObject docs' two combinations
        ({CS + "if-match": f'"{ETAG}"', CS + "if-unmodified-since": BEFORE}, "200"),
        ({CS + "if-none-match": f'"{ETAG}"', CS + "if-modified-since": BEFORE}, "412 PreconditionFailed"),
        ({CS + "if-none-match": f'"{OTHER}"', CS + "if-modified-since": AFTER}, "200"),
        # the plain GET headers do not apply to the copy source
        ({"if-match": f'"{OTHER}"', "if-none-match": f'"{ETAG}"'}, "200"),
    ],
)
def test_copy_source_preconditions(headers: dict[str, str], expected: str) -> None:
    assert outcome(headers, CS) == expected


def test_copy_source_prefix_ignores_plain_conditions_and_vice_versa() -> None:
    assert outcome({CS + "if-match": f'"{OTHER}"'}) == "200"
