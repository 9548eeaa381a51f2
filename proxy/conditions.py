"""Range and conditional-request evaluation for GET and HEAD, as S3 does it (RFC 9110 order).

Pure functions over the object's metadata and the request headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cache.s3.errors import S3Error, invalid_argument
from cache.s3.model import MAX_PART_NUMBER, ObjectMeta
from cache.s3.xml import http_date
from proxy.xml import http_time

_CONDITION_HEADERS = {
    prefix: frozenset(prefix + name for name in ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since"))
    for prefix in ("", "x-amz-copy-source-")
}
# ASCII digits and HTTP's whitespace (SP, HTAB): \d and \s would take other digits (int() reads them too) and spaces
_RANGE_RE = re.compile(r"^[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*$")
_INT_DIGITS = 4000  # int() refuses a decimal string past 4300 digits (sys.get_int_max_str_digits)
_INT_BASE: int = 10**_INT_DIGITS
MAX_RANGE_START = 1 << 63  # where range_start stops counting: far past S3's largest object (5 TiB)


def _decimal(digits: str) -> int:
    """ASCII digits as an int, however many a header holds (bytes=0-999...: the exact value, as int() would)."""
    digits = digits.lstrip("0")
    if len(digits) <= _INT_DIGITS:
        return int(digits or "0")
    return _decimal(digits[:-_INT_DIGITS]) * _INT_BASE + int(digits[-_INT_DIGITS:])


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range`` -> [start, end) to serve, None for the whole object; 416 InvalidRange if unsatisfiable.

    Syntactically invalid or multi-range headers are ignored (the whole object is served), as S3 does.
    """
    if header is None:
        return None
    match = _RANGE_RE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        length = _decimal(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = _decimal(first)
    end = _decimal(last) + 1 if last != "" else size
    if last != "" and end <= start:
        return None  # last < first: not a valid byte-range-spec, so the header is ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


def range_start(header: str | None) -> int | None:
    """Where a read will start, known before the object's size: the first byte of ``bytes=N-...``, 0 for another
    range (a suffix), None without a Range header (the whole object; an unreadable header is ignored too)."""
    match = _RANGE_RE.match(header) if header is not None else None
    if match is None or match.groups() == ("", ""):
        return None
    # past any object's end either way: capped, so a start of thousands of digits is not asked of an origin as such
    return min(_decimal(match.group(1)), MAX_RANGE_START) if match.group(1) else 0


def part_number(query: Mapping[str, str], headers: Mapping[str, str]) -> int | None:
    """GetObject's / HeadObject's ``partNumber`` (a part read), None without one: 400 InvalidArgument unless ASCII
    digits of 1 to MAX_PART_NUMBER (str.isdigit() takes "²", int() refuses it), 400 InvalidRequest with a Range."""
    raw = query.get("partNumber")
    if raw is None:
        return None
    digits = raw.lstrip("0")
    if not raw.isascii() or not raw.isdigit() or len(digits) > 5 or not 1 <= int(digits or "0") <= MAX_PART_NUMBER:
        raise invalid_argument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                               "partNumber", raw)
    if "range" in headers:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
    return int(digits)


def _unsatisfiable(size: int) -> S3Error:
    return S3Error("InvalidRange", extra={"ActualObjectSize": str(size)},
                   headers={"content-range": f"bytes */{size}"})


def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def _not_modified(meta: ObjectMeta, prefix: str, condition: str) -> S3Error:
    if prefix:  # a copy source that did not change is a failed precondition, not a 304
        return S3Error("PreconditionFailed", extra={"Condition": condition})
    return S3Error("NotModified", headers={"etag": f'"{meta.etag}"', "last-modified": http_time(meta.last_modified)})


def check_preconditions(headers: Mapping[str, str], meta: ObjectMeta, prefix: str = "") -> None:
    """Raise PreconditionFailed (412) or NotModified (304) when the request's conditions say so.

    prefix="x-amz-copy-source-" evaluates CopyObject's source conditions, where both failures are 412.
    """
    if not headers.keys() & _CONDITION_HEADERS[prefix]:
        return
    modified = int(meta.last_modified)  # HTTP dates have whole seconds
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not _etag_matches(if_match, meta.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    else:
        since = http_date(headers.get(prefix + "if-unmodified-since"))  # an unparseable date is ignored, as HTTP says
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Unmodified-Since"})
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, meta.etag):
            raise _not_modified(meta, prefix, "If-None-Match")
    else:
        since = http_date(headers.get(prefix + "if-modified-since"))
        if since is not None and modified <= since:
            raise _not_modified(meta, prefix, "If-Modified-Since")
