"""Properties of the parsers every request goes through, over generated input (hypothesis, bounded): each either
answers a value of the right shape or raises S3Error, never any other exception (which the front would turn into a
500 InternalError).

Router (Request + resolve), Range, the XML bodies (DeleteObjects, CompleteMultipartUpload, Tagging), the credential
parsers (SigV4 / SigV2 headers, presigned query strings; verified SigV4 too) and the aws-chunked decoder.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import string
from collections.abc import Awaitable, Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cache.s3.errors import CODES, S3Error
from cache.s3.model import MAX_PART_NUMBER
from cache.storage.origin.multipart import _answer as answer_xml
from conf.settings import AuthSettings
from proxy.auth import authenticate, check_expiry, user_of
from proxy.body import AwsChunkedDecoder, body_check, decoded_body
from proxy.conditions import MAX_RANGE_START, parse_range, range_start
from proxy.context import Context
from proxy.handlers.multipart import complete_multipart_upload, upload_part
from proxy.handlers.objects import MAX_DELETE_KEYS, delete_objects
from proxy.handlers.tagging import put_bucket_tagging, put_object_tagging
from proxy.http import Request, Response
from proxy.operations import OPERATIONS, SELECTORS, UNSUPPORTED, Operation, resolve
from proxy.policy import OPEN
from proxy.sigv4verify import presigned_window, verify

# The same 200 examples every run, so CI is repeatable; S3CACHE_HYPOTHESIS_EXPLORE=1 draws new ones each run.
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                   derandomize=os.environ.get("S3CACHE_HYPOTHESIS_EXPLORE") != "1")
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)

# ---- helpers ---------------------------------------------------------------------------------------


def scope(method: str, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": raw_path.decode("latin-1"), "raw_path": raw_path,
            "query_string": query, "headers": headers}


def request_with_body(body: bytes, query: str = "", headers: dict[str, str] | None = None,
                      path: str = "/b/k", pieces: int = 1) -> Request:
    """A Request whose body arrives in `pieces` messages."""
    size = max(1, -(-len(body) // max(1, pieces)))
    chunks = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    hs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return Request(scope("POST", path.encode(), query.encode("latin-1"), hs), receive)


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def assert_s3_error(error: S3Error, *codes: str) -> None:
    """An S3Error the front can answer: a known code (so a status) and, when given, one of codes."""
    assert error.code in CODES, error
    assert 300 <= error.status < 600
    if codes:
        assert error.code in codes, error


class FakeStore:
    """The calls the XML handlers make once a body is judged good, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def head_bucket(self, bucket: str) -> None:
        self.calls.append(("head_bucket", (bucket,)))

    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        self.calls.append(("delete_objects", (bucket, keys)))
        return [None] * len(keys)

    async def complete_upload(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]],
                              conditions: object, checksums: object = None) -> Any:
        self.calls.append(("complete_upload", (bucket, key, upload_id, parts)))
        return SimpleNamespace(etag="0" * 32 + "-1", checksums={}, checksum_type=None)

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self.calls.append(("put_object_tags", (bucket, key, tags)))

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        self.calls.append(("put_bucket_tags", (bucket, tags)))


def context(store: FakeStore) -> Context:
    return cast(Context, SimpleNamespace(store=store, policy=OPEN))


Handler = Callable[[Context, Request], Awaitable[Response]]


def call(handler: Handler, body: bytes, query: str = "", pieces: int = 1,
         path: str = "/b/k") -> tuple[Response | S3Error, FakeStore]:
    store = FakeStore()
    try:
        answer = run(handler(context(store), request_with_body(body, query, path=path, pieces=pieces)))
        event("parsed")
        return answer, store
    except S3Error as error:
        event(error.code)
        assert_s3_error(error)
        assert store.calls == [] or (store.calls[0][0] == "head_bucket" and len(store.calls) == 1)
        return error, store


# ---- the router ------------------------------------------------------------------------------------

METHODS = st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "TRACE", "get", "CONNECT"])
QUERY_WORDS = sorted({*SELECTORS, *UNSUPPORTED, "partNumber", "versionId", "prefix", "max-keys", "X-Amz-Signature",
                      "uploadId", "list-type", "continuation-token"})
PATH_ALPHABET = string.ascii_letters + string.digits + "/%._-~!*'()&$+,;=:@ ?#[]\\\x00\x7f\xe9\x85"


@st.composite
def paths(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.one_of(
        st.text(PATH_ALPHABET, max_size=12),
        st.sampled_from(["", ".", "..", "b", "bucket", "my.bucket", "_s3cache", "a" * 64, "Bucket_1"]),
        st.binary(max_size=3).map(lambda raw: "".join(f"%{byte:02X}" for byte in raw)),  # percent-escapes, any bytes
        st.sampled_from(["%", "%2", "%zz", "%2F", "%C3%A9", "%C2%85", "%FF", "%00"]),
    ), max_size=5))
    return ("/" * draw(st.integers(0, 2)) + "/".join(parts)).encode("utf-8", "surrogatepass")


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_WORDS), st.text(max_size=6)),
                                    st.one_of(st.none(), st.text(max_size=8))), max_size=5))
    raw = "&".join(quote(k) if v is None else f"{quote(k)}={quote(v)}" for k, v in items)
    if draw(st.booleans()):
        raw += draw(st.text(string.printable + "%\xff", max_size=10))
    return raw.encode("utf-8")


HEADER_NAMES = st.one_of(st.sampled_from([
    "x-amz-copy-source", "content-length", "range", "authorization", "x-amz-content-sha256", "expect",
    "x-amz-meta-a", "content-md5", "x-amz-date", "host", "if-match",
]), st.text(string.ascii_lowercase + "-", min_size=1, max_size=10))
HEADERS = st.lists(st.tuples(HEADER_NAMES.map(str.encode), st.binary(max_size=20)), max_size=6)


@BOUNDED
@given(METHODS, paths(), queries(), HEADERS)
@example("GET", b"//b/k", b"", [])
@example("PUT", b"/b/k", b"uploadId=1&partNumber=2", [(b"x-amz-copy-source", b"/s/k")])
@example("GET", b"/b/%C2%85", b"acl&tagging", [])
def test_router_answers_an_operation_or_an_s3_error(method: str, raw_path: bytes, query: bytes,
                                                    headers: list[tuple[bytes, bytes]]) -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("routing must not read the body")

    try:
        request = Request(scope(method, raw_path, query, headers), receive)
        operation = resolve(request)
    except S3Error as error:
        assert_s3_error(error, "InvalidURI", "InvalidBucketName", "NotImplemented", "MethodNotAllowed")
        event(error.code)
        return
    event("an operation")
    assert isinstance(operation, Operation) and operation in OPERATIONS
    assert operation.method == method and operation.route[1] == request.level


# ---- Range -----------------------------------------------------------------------------------------


def range_model(header: str, size: int) -> tuple[int, int] | str | None:
    """What S3 does with a Range header, written apart from the parser: None (the whole object), (start, end), or
    "416". One byte-range-spec of ASCII digits; anything else is ignored."""
    text = header.strip(" \t")
    if not text.startswith("bytes"):
        return None
    text = text[len("bytes"):].strip(" \t")
    if not text.startswith("="):
        return None
    first, sep, last = text[1:].partition("-")
    first, last = first.strip(" \t"), last.strip(" \t")
    digits = set(string.digits)
    if not sep or not set(first) <= digits or not set(last) <= digits or (first == last == ""):
        return None
    if first == "":
        n = number(last)
        return "416" if n == 0 or size == 0 else (max(0, size - n), size)
    start = number(first)
    if last != "" and number(last) < start:
        return None
    if start >= size:
        return "416"
    return start, size if last == "" else min(number(last) + 1, size)


def number(digits: str) -> int:
    return int(Decimal(digits))  # exact however long (int(str) refuses past 4300 digits)


def outcome(header: str, size: int) -> tuple[int, int] | str | None:
    try:
        result = parse_range(header, size)
    except S3Error as error:
        assert error.code == "InvalidRange" and error.status == 416
        assert error.headers == {"content-range": f"bytes */{size}"}
        return "416"
    if result is not None:
        start, end = result
        assert 0 <= start < end <= size
    return result


RANGE_ALPHABET = "bytes=-0123456789 \t,"


@st.composite
def range_headers(draw: st.DrawFn) -> str:
    number: st.SearchStrategy[str] = st.one_of(st.just(""), st.integers(0, 30).map(str), st.integers(0, 30).map(str),
                       st.integers(0, 10**7).map(str), st.integers(0, 2**70).map(str),
                       st.sampled_from(["0" * 30 + "5", "9" * 5000, "1" * 4301]))
    space = st.sampled_from(["", "", "", " ", "\t"])
    unit = st.sampled_from(["bytes"] * 16 + ["Bytes", "byte", "items", ""])
    head = draw(space) + draw(unit) + draw(space) + draw(st.sampled_from(["="] * 8 + [":", ""])) + draw(space)
    spec = draw(number) + draw(space) + draw(st.sampled_from(["-"] * 8 + ["", "--"])) + draw(space) + draw(number)
    tail = draw(st.sampled_from([""] * 16 + [",0-1", ", 5-", " ", "x"]))
    return f"{head}{spec}{tail}"


SIZES = st.one_of(st.integers(0, 40), st.integers(0, 10**7), st.just(2**63))


@BOUNDED
@given(st.one_of(range_headers(), range_headers(), st.text(RANGE_ALPHABET, max_size=20), st.text(max_size=20)),
       SIZES)
@example("bytes=" + "9" * 5000 + "-", 100)
@example("bytes=0-" + "9" * 5000, 100)
@example("bytes=-" + "9" * 5000, 100)
@example("bytes=\u0663-", 100)  # an Arabic-Indic digit: not an ASCII one
@example("bytes=\xa00-5", 100)  # a no-break space: not HTTP whitespace
@example("\x85bytes=0-5", 100)
def test_range_is_ignored_served_or_416_as_the_model_says(header: str, size: int) -> None:
    result = outcome(header, size)
    event("ignored" if result is None else str(result) if result == "416" else "served")
    assert result == range_model(header, size)
    start = range_start(header)  # never raises either, and never names a start no origin can be asked for
    assert start is None or 0 <= start <= MAX_RANGE_START


# ---- XML bodies ------------------------------------------------------------------------------------

XML_TEXT = st.one_of(st.text(string.ascii_letters + string.digits + " -_./", max_size=12),
                    st.text(st.characters(codec="utf-8", blacklist_characters="<&\x00"), max_size=12))


@st.composite
def elements(draw: st.DrawFn, name: str, children: st.SearchStrategy[str]) -> str:
    attributes = draw(st.sampled_from(["", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', " a='1'"]))
    return f"<{name}{attributes}>{draw(children)}</{name}>"


def text_or_mangled(value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Mostly the right kind of value; now and then anything, or markup where text belongs."""
    mangled = st.one_of(XML_TEXT, st.sampled_from(["", " ", "<![CDATA[x]]>", "&amp;", "&#0;", "&bad;", "<x/>"]))
    return st.sampled_from([True] * 4 + [False]).flatmap(lambda right: value if right else mangled)


def near_valid(root: str, body: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Documents close to right, then perhaps cut, with a prolog or a DOCTYPE (defusedxml refuses entities)."""
    prolog = st.sampled_from(["", "", "", '<?xml version="1.0" encoding="UTF-8"?>', "\n",
                              '<!DOCTYPE x [<!ENTITY e "v">]>', '<?xml version="1.0" encoding="latin-1"?>'])

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        kind = draw(st.sampled_from(["root"] * 6 + ["other", "bare"]))
        top = elements(root, body) if kind == "root" else elements("Other", body) if kind == "other" else body
        document = (draw(prolog) + draw(top)).encode()
        cut = draw(st.sampled_from([None] * 4 + [0])) if document else None
        return document if cut is None else document[:draw(st.integers(0, len(document)))]
    return build()


PART_NUMBERS = st.one_of(st.integers(-2, MAX_PART_NUMBER + 2).map(str), st.sampled_from(
    ["", " 1 ", "01", "1.0", "+1", "\u00b2", "\u0663", "9" * 5000, "1e3", "0x1"]))


def children(*required: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Mostly the children an element needs, in order (perhaps with junk); sometimes any of them, any number."""
    junk = elements("Junk", XML_TEXT)
    whole = st.tuples(*required, st.sampled_from(["", "", "<Junk/>"])).map("".join)
    return st.one_of(whole, whole, whole, st.lists(st.one_of(*required, junk), max_size=3).map("".join))


PART = elements("Part", children(elements("PartNumber", text_or_mangled(PART_NUMBERS)),
                                 elements("ETag", text_or_mangled(st.just('"abc"')))))
COMPLETE = near_valid("CompleteMultipartUpload", st.lists(PART, max_size=4).map("".join))

OBJECT = elements("Object", children(elements("Key", text_or_mangled(st.text(min_size=1, max_size=8))),
                                     st.one_of(st.just(""), elements("VersionId", text_or_mangled(
                                         st.sampled_from(["null", "v1", ""]))))))
DELETE = near_valid("Delete", st.lists(st.one_of(OBJECT, elements("Quiet", text_or_mangled(
    st.sampled_from(["true", "false", "TRUE "])))), max_size=4).map("".join))

TAG = elements("Tag", children(elements("Key", text_or_mangled(st.text(string.ascii_letters, min_size=1, max_size=8))),
                               elements("Value", text_or_mangled(st.text(max_size=8)))))
TAGGING = near_valid("Tagging", st.one_of(elements("TagSet", st.lists(TAG, max_size=4).map("".join)), XML_TEXT))

ANY_BYTES = st.one_of(st.binary(max_size=64), st.text(max_size=40).map(str.encode))
XML_CODES = ("MalformedXML", "InvalidArgument", "InvalidTag", "IncompleteBody")


@BOUNDED
@given(st.one_of(COMPLETE, COMPLETE, COMPLETE, ANY_BYTES), st.integers(1, 3))
@example(b"<CompleteMultipartUpload><Part><PartNumber>\xc2\xb2</PartNumber><ETag>e</ETag></Part>"
         b"</CompleteMultipartUpload>", 1)
@example(b"<CompleteMultipartUpload><Part><PartNumber>" + b"9" * 5000 + b"</PartNumber><ETag>e</ETag></Part>"
         b"</CompleteMultipartUpload>", 1)
def test_complete_multipart_upload_body_is_parts_or_an_s3_error(body: bytes, pieces: int) -> None:
    answer, store = call(complete_multipart_upload, body, "uploadId=u1", pieces)
    if isinstance(answer, S3Error):
        assert_s3_error(answer, *XML_CODES)
        return
    assert answer.status == 200 and [name for name, _ in store.calls] == ["complete_upload"]
    parts = store.calls[0][1][3]
    assert all(1 <= number <= MAX_PART_NUMBER and isinstance(etag, str) for number, etag in parts)


@BOUNDED
@given(st.one_of(DELETE, DELETE, DELETE, ANY_BYTES), st.integers(1, 3))
def test_delete_objects_body_is_keys_or_an_s3_error(body: bytes, pieces: int) -> None:
    answer, store = call(delete_objects, body, "delete", pieces, path="/b")
    if isinstance(answer, S3Error):
        assert_s3_error(answer, *XML_CODES)
        return
    assert answer.status == 200 and store.calls[0][0] == "head_bucket"
    deleted = store.calls[1][1][1] if len(store.calls) > 1 else []
    assert 0 <= len(deleted) <= MAX_DELETE_KEYS and all(isinstance(key, str) for key in deleted)


@BOUNDED
@given(st.one_of(TAGGING, TAGGING, TAGGING, ANY_BYTES), st.integers(1, 3), st.booleans())
def test_tagging_body_is_tags_or_an_s3_error(body: bytes, pieces: int, on_bucket: bool) -> None:
    handler, path, query = (put_bucket_tagging, "/b", "tagging") if on_bucket else (put_object_tagging, "/b/k",
                                                                                       "tagging")
    answer, store = call(handler, body, query, pieces, path=path)
    if isinstance(answer, S3Error):
        assert_s3_error(answer, *XML_CODES)
        return
    assert answer.status in (200, 204) and len(store.calls) == 1
    tags = store.calls[0][1][-1]
    assert isinstance(tags, dict) and len(tags) <= 50 and all(k and not k.lower().startswith("aws:") for k in tags)


# ---- credentials -----------------------------------------------------------------------------------

CREDENTIAL = st.one_of(
    st.sampled_from(["AKID/20260101/us-east-1/s3/aws4_request", "AKID/20260101/us-east-1/s3/aws4_request ",
                     "/20260101/us-east-1/s3/aws4_request", "AKID/x/y/z/aws4_request", "AKID/////aws4_request",
                     "AKID/20260101/\u00e9/s3/aws4_request", "AKID/20260101/us-east-1/s3"]),
    st.lists(st.text(string.printable + "\u00e9\x00", max_size=6), min_size=1, max_size=6).map("/".join))
FIELD_VALUE = st.one_of(CREDENTIAL, st.text(max_size=12), st.sampled_from(["host;x-amz-date", "", "host;;", "a" * 64]))
V4_FIELDS = st.lists(st.tuples(st.sampled_from(["Credential", "SignedHeaders", "Signature", "credential", "X", ""]),
                               st.sampled_from(["=", "=", "", "=="]), FIELD_VALUE), max_size=5)


@st.composite
def authorizations(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["v4", "v4", "v2", "bearer", "other"]))
    if kind == "v4":
        return "AWS4-HMAC-SHA256" + draw(st.sampled_from([" ", "", "  "])) + \
            draw(st.sampled_from([",", ", ", " ,"])).join(f"{k}{s}{v}" for k, s, v in draw(V4_FIELDS))
    if kind == "v2":
        return "AWS " + draw(st.text(max_size=10)) + draw(st.sampled_from([":", "", "::"])) + draw(st.text(max_size=10))
    if kind == "bearer":
        return draw(st.sampled_from(["Bearer ", "bearer", "Bearer  x"])) + draw(st.text(max_size=10))
    return draw(st.text(max_size=30))


DATES = st.one_of(st.sampled_from(["20260101T120000Z", "20260101T115959Z", "20251231T000000Z", "2026-01-01",
                                   "99991231T235959Z", "00010101T000000Z", "", "20260230T000000Z"]),
                  st.text(string.digits + "TZ", max_size=17))
PRESIGNED_KEYS = st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                                  "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "AWSAccessKeyId",
                                  "Expires", "Signature", "x-amz-security-token"])
QUERY_VALUES = st.one_of(CREDENTIAL, DATES, st.sampled_from(["AWS4-HMAC-SHA256", "host", "60", "604800", "604801",
                                                             "-1", "1e3", "\u00b2", "9" * 5000, "1767268800",
                                                             "99999999999999999999", "0"]), st.text(max_size=10))
PRESIGNED = st.dictionaries(PRESIGNED_KEYS, QUERY_VALUES, max_size=7)
HEADER_VALUES = st.dictionaries(st.sampled_from(["x-amz-date", "x-amz-content-sha256", "host", "range"]),
                                st.one_of(DATES, st.text(max_size=10)), max_size=3)


@BOUNDED
@given(st.one_of(st.none(), authorizations()), PRESIGNED, HEADER_VALUES)
@example("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=x",
         {}, {})
@example(None, {"AWSAccessKeyId": "a", "Expires": "\u00b2", "Signature": "s"}, {})
@example(None, {"X-Amz-Credential": "AKID/20260101/us-east-1/s3/aws4_request", "X-Amz-Expires": "9" * 5000,
                "X-Amz-Date": "20260101T120000Z", "X-Amz-Signature": "s"}, {})
@example(None, {"AWSAccessKeyId": "a", "Expires": "9" * 5000, "Signature": "s"}, {})
def test_simple_mode_names_a_user_or_raises_s3_error(authorization: str | None, query: dict[str, str],
                                                     headers: dict[str, str]) -> None:
    if authorization is not None:
        headers = {**headers, "authorization": authorization}
    attempts: list[Callable[[], str | None]] = [
        lambda: user_of(headers, query), lambda: check_expiry(query, NOW),
        lambda: authenticate(AuthSettings(), "GET", "/b/k", "", headers, query).user]
    for attempt in attempts:
        try:
            user = attempt()
        except S3Error as error:
            assert_s3_error(error)
            continue
        assert user is None or (isinstance(user, str) and user)


def raw_query(query: dict[str, str]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())


@BOUNDED
@given(st.one_of(st.none(), authorizations()), PRESIGNED, HEADER_VALUES,
       st.sampled_from(["/b/k", "/", "/b/%C3%A9", "/b/a b", "/b/\u00e9", "/b/k?x", "//b", "/b/%"]),
       st.sampled_from(["GET", "PUT", "HEAD", "get", ""]))
@example("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-date,"
         "Signature=abc", {}, {"x-amz-date": "20260101T120000Z"}, "/b/k", "GET")
@example("AWS4-HMAC-SHA256 Credential=AKID/20260101/\u00e9/s3/aws4_request,SignedHeaders=host,Signature=abc",
         {}, {"x-amz-date": "20260101T120000Z"}, "/b/\u00e9", "GET")
@example(None, {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": "AKID/20260101/us-east-1/s3/aws4_request",
                "X-Amz-Date": "20260101T120000Z", "X-Amz-Expires": "60", "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": "abc"}, {}, "/b/k", "GET")
def test_verified_sigv4_is_a_user_or_an_s3_error(authorization: str | None, query: dict[str, str],
                                                 headers: dict[str, str], path: str, method: str) -> None:
    if authorization is not None:
        headers = {**headers, "authorization": authorization}
    try:
        user = verify(method, path, raw_query(query), headers, lambda key: "secret" if key else None, now=NOW)
    except S3Error as error:
        assert_s3_error(error)
        return
    assert isinstance(user, str)


@BOUNDED
@given(PRESIGNED)
def test_presigned_window_is_a_window_or_an_s3_error(query: dict[str, str]) -> None:
    try:
        date, expires = presigned_window(query, NOW)
    except S3Error as error:
        assert_s3_error(error, "AuthorizationQueryParametersError", "AccessDenied")
        return
    assert 0 <= expires <= 604800 and date + datetime.timedelta(seconds=expires) >= NOW


# ---- aws-chunked -----------------------------------------------------------------------------------

SIG = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
FRAMING_BYTES = st.sampled_from([b"\r\n", b"0\r\n\r\n", b";chunk-signature=", b"\r", b"\n", b"x-amz-checksum-crc32:"])
PAYLOAD_CHUNKS = st.lists(st.one_of(st.binary(min_size=1, max_size=40), FRAMING_BYTES), max_size=6)
TRAILERS = st.lists(st.tuples(st.sampled_from(["x-amz-checksum-crc32", "x-amz-trailer-signature", "X-Odd"]),
                              st.text(string.ascii_letters + string.digits + "+/= ", max_size=12)), max_size=2)


@st.composite
def framings(draw: st.DrawFn) -> tuple[bytes, bytes, dict[str, str]]:
    """A well-formed aws-chunked body: (encoded, payload, trailers)."""
    chunks = draw(PAYLOAD_CHUNKS)
    signed = draw(st.booleans())
    upper = draw(st.booleans())
    out = b""
    for chunk in chunks:
        size = b"%X" % len(chunk) if upper else b"%x" % len(chunk)
        size = b"0" * draw(st.integers(0, 2)) + size
        out += size + (f";chunk-signature={SIG}".encode() if signed else b"") + b"\r\n" + chunk + b"\r\n"
    out += b"0" + (f";chunk-signature={SIG}".encode() if signed else b"") + b"\r\n"
    trailers = draw(TRAILERS)
    for name, value in trailers:
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    expected = {name.lower(): value.strip() for name, value in trailers}
    return out, b"".join(chunks), expected


def decode_in(pieces: list[bytes]) -> tuple[bytes, dict[str, str]]:
    decoder = AwsChunkedDecoder()
    out = b"".join(b"".join(decoder.feed(piece)) for piece in pieces)
    decoder.finish()
    return out, decoder.trailers


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@BOUNDED
@given(framings(), st.lists(st.integers(0, 400), max_size=8))
def test_aws_chunked_decodes_exactly_however_it_is_split(framing: tuple[bytes, bytes, dict[str, str]],
                                                         cuts: list[int]) -> None:
    encoded, payload, trailers = framing
    assert decode_in(split(encoded, cuts)) == (payload, trailers)


MUTATIONS = st.sampled_from(["truncate", "bad-hex", "drop-crlf", "flip", "insert", "longer", "shorter"])


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    encoded, payload, _ = draw(framings())
    how = draw(MUTATIONS)
    at = draw(st.integers(0, max(0, len(encoded) - 1)))
    if how == "truncate":
        encoded = encoded[:at]
    elif how == "bad-hex":
        encoded = draw(st.sampled_from([b"g", b"-1", b"0x1", b"+1", b" ", b"", b"1_0", b"\xff"])) + \
            encoded[encoded.index(b"\r\n"):]
    elif how == "drop-crlf":
        where = encoded.find(b"\r\n", at)
        encoded = encoded if where < 0 else encoded[:where] + encoded[where + 2:]
    elif how == "flip":
        encoded = encoded[:at] + bytes([encoded[at] ^ draw(st.integers(1, 255))]) + encoded[at + 1:] if encoded \
            else encoded
    elif how == "insert":
        encoded = encoded[:at] + draw(st.binary(min_size=1, max_size=6)) + encoded[at:]
    elif how == "longer":  # a chunk that holds more than its size says
        encoded = b"1\r\nab\r\n" + encoded
    else:  # a chunk that holds less than its size says
        encoded = b"5\r\nab\r\n" + encoded
    return encoded, payload, how


@BOUNDED
@given(mutated(), st.lists(st.integers(0, 400), max_size=6))
@example((b"1\r\nab\r\n0\r\n\r\n", b"", "longer"), [])
@example((b"5\r\nab\r\n0\r\n\r\n", b"", "shorter"), [])
@example((b"g\r\n", b"", "bad-hex"), [])
@example((b"3\r\nabc0\r\n\r\n", b"abc", "drop-crlf"), [3])
@example((b"1" * 5000 + b"\r\n", b"", "insert"), [])
def test_damaged_aws_chunked_is_an_s3_error_or_still_exact(case: tuple[bytes, bytes, str], cuts: list[int]) -> None:
    encoded, payload, how = case
    try:
        decoded, _ = decode_in(split(encoded, cuts))
    except S3Error as error:
        assert_s3_error(error, "InvalidRequest", "IncompleteBody")
        return
    assert how not in ("bad-hex", "longer", "shorter"), "a framing error was decoded"
    if how == "truncate":  # decodable only when cut in the closing blank line: then every byte came
        assert decoded == payload


@BOUNDED
@given(st.one_of(framings().map(lambda f: f[0]), mutated().map(lambda m: m[0]), st.binary(max_size=80)),
       st.integers(1, 4), st.sampled_from(["", "4", "0", "x", "-1", "99999999999"]),
       st.sampled_from(["", "x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-checksum-bogus"]))
def test_streaming_put_body_is_its_bytes_or_an_s3_error(encoded: bytes, pieces: int, decoded_length: str,
                                                        trailer: str) -> None:
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content-encoding": "aws-chunked"}
    if decoded_length:
        headers["x-amz-decoded-content-length"] = decoded_length
    if trailer:
        headers["x-amz-trailer"] = trailer
    request = request_with_body(encoded, "", headers, pieces=pieces)

    async def read() -> bytes:
        return b"".join([piece async for piece in decoded_body(request, body_check(request))])

    try:
        body = run(read())
    except S3Error as error:
        assert_s3_error(error)
        return
    if decoded_length and decoded_length.isdigit():
        assert len(body) == int(decoded_length)


@BOUNDED
@given(st.text(max_size=12), st.text(max_size=12))
@example("\u00b2", "u")
@example("9" * 5000, "u")
def test_upload_part_number_is_a_number_or_invalid_argument(part_number: str, upload_id: str) -> None:
    class Store:
        async def upload_part(self, *args: Any, **kwargs: Any) -> Any:
            async for _ in args[4]:
                pass
            return SimpleNamespace(etag="e")

    request = request_with_body(b"abc", f"uploadId={quote(upload_id)}&partNumber={quote(part_number)}",
                                {"content-length": "3"}, path="/b/k")
    try:
        answer = run(upload_part(cast(Context, SimpleNamespace(store=Store())), request))
    except S3Error as error:
        assert_s3_error(error, "InvalidArgument")
        return
    assert answer.status == 200 and 1 <= int(part_number) <= MAX_PART_NUMBER


@BOUNDED
@given(st.text(max_size=20), st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20))
@example("sp ace\x00", "u1")
@example("\x01\x1f\ufffe", "u1")
@example("\x1f\U000f0000", "u1")  # a key using the first private-use plane itself
@example("\x1f\U000f0000\U00100000", "u1")  # and both of them
def test_an_origin_answer_echoing_any_key_is_read_exactly(key: str, upload_id: str) -> None:
    """An origin (moto) echoes a key XML 1.0 cannot carry raw: its upload answers are still read, the key exact
    (but for XML's end-of-line handling, CR LF and CR read as LF)."""
    answer = (b'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>' +
              key.replace("&", "&amp;").replace("<", "&lt;").encode() + b"</Key><UploadId>" + upload_id.encode() +
              b"</UploadId></InitiateMultipartUploadResult>")
    root = answer_xml(answer)
    assert root.findtext("UploadId") == upload_id
    assert root.findtext("Key") == key.replace("\r\n", "\n").replace("\r", "\n")
