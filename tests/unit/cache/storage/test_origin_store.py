"""cache.storage.origin.store.S3Store against an httpx.MockTransport: requests as S3 expects them, errors as the origin sent
them, retries of idempotent calls only, listings decoded, ranged reads pinned to an ETag."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from defusedxml import ElementTree

from cache.s3.errors import S3Error
from cache.s3.model import BodyChecksums, NewObject, SentChecksums, WriteConditions
from cache.storage.origin.credentials import Credentials
from cache.storage.origin.signing import Signer
from cache.storage.origin.store import S3Store
from cache.storage.origin.transport import HttpxTransport

ENDPOINT = "http://origin.test:9000"
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler: answers from a function and keeps every request it saw."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.answer = answer or (lambda request: httpx.Response(200))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        return self.answer(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def make_store(recorder: Recorder, *, signer: Signer | None = None, virtual_host: bool = False,
               retries: int = 3) -> S3Store:
    transport = HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(recorder)))
    return S3Store(ENDPOINT, "us-east-1", signer, virtual_host=virtual_host, retries=retries, backoff_base_s=0.0,
                   transport=transport)


def call(store: S3Store, method: str, *args: Any, **kwargs: Any) -> Any:
    async def go() -> Any:
        try:
            return await getattr(store, method)(*args, **kwargs)
        finally:
            await store.aclose()
    return asyncio.run(go())


def error_of(store: S3Store, method: str, *args: Any, **kwargs: Any) -> S3Error:
    with pytest.raises(S3Error) as caught:
        call(store, method, *args, **kwargs)
    return caught.value


def xml_error(code: str, message: str = "", status: int = 400, **headers: str) -> Handler:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>" \
           f"<RequestId>r1</RequestId></Error>".encode()
    return lambda request: httpx.Response(status, content=body, headers={"content-type": "application/xml",
                                                                             **headers})


HEAD_OK = {"content-length": "11", "etag": '"0123456789abcdef0123456789abcdef"',
           "last-modified": "Wed, 01 Jan 2025 00:00:00 GMT", "content-type": "text/plain",
           "x-amz-meta-owner": "alice", "x-amz-tagging-count": "2", "cache-control": "no-cache"}


# ---- request building ---------------------------------------------------------------------------

KEYS = [
    ("plain.txt", "/plain.txt"),
    ("dir/a b.txt", "/dir/a%20b.txt"),
    ("x+y=z&w", "/x%2By%3Dz%26w"),
    ("tilde~star*", "/tilde~star%2A"),
    ("caf\u00e9/\u65e5\u672c.bin", "/caf%C3%A9/%E6%97%A5%E6%9C%AC.bin"),
    ("100%?#.csv", "/100%25%3F%23.csv"),
    ("a//b//", "/a//b//"),
]


@pytest.mark.parametrize(("key", "encoded"), KEYS)
def test_path_style_urls_quote_keys_once(key: str, encoded: str) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    meta = call(make_store(recorder), "head_object", "my-bucket", key)
    request = recorder.last
    assert request.method == "HEAD"
    assert request.url.raw_path == b"/my-bucket" + encoded.encode()
    assert request.url.host == "origin.test" and request.url.port == 9000
    assert request.headers["host"] == "origin.test:9000"
    assert unquote(request.url.raw_path.decode())[len("/my-bucket/"):] == key
    assert meta.key == key


@pytest.mark.parametrize(("key", "encoded"), KEYS)
def test_virtual_host_urls_put_the_bucket_in_the_host(key: str, encoded: str) -> None:
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    call(make_store(recorder, virtual_host=True), "head_object", "my-bucket", key)
    request = recorder.last
    assert request.url.host == "my-bucket.origin.test"
    assert request.headers["host"] == "my-bucket.origin.test:9000"
    assert request.url.raw_path == encoded.encode()


@pytest.mark.parametrize("key", ["a/./b", "a/../b", "./x", "x/.."])
def test_dot_segments_in_keys_are_sent_as_they_are(key: str) -> None:
    """httpx would drop '.' and '..' segments from the URL; the request line must carry the signed path."""
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    call(make_store(recorder), "head_object", "bkt", key)
    assert recorder.last.extensions["target"] == b"/bkt/" + key.encode()


def test_virtual_host_bucket_and_service_level_requests() -> None:
    recorder = Recorder(lambda request: httpx.Response(200))
    store = make_store(recorder, virtual_host=True)
    call(store, "head_bucket", "my-bucket")
    assert recorder.last.url.host == "my-bucket.origin.test" and recorder.last.url.raw_path == b"/"
    listing = f"<ListAllMyBucketsResult {NS}><Buckets></Buckets></ListAllMyBucketsResult>".encode()
    recorder.answer = lambda request: httpx.Response(200, content=listing)
    assert call(make_store(recorder, virtual_host=True), "list_buckets") == []
    assert recorder.last.url.host == "origin.test" and recorder.last.url.raw_path == b"/"


def test_query_strings_are_sorted_and_fully_encoded() -> None:
    page = f"<ListBucketResult {NS}><IsTruncated>false</IsTruncated></ListBucketResult>".encode()
    recorder = Recorder(lambda request: httpx.Response(200, content=page))
    call(make_store(recorder), "list_objects", "bkt", "pre fix/\u00fc+&=", "/", "", 5000)
    assert recorder.last.url.raw_path == (
        b"/bkt?delimiter=%2F&encoding-type=url&list-type=2&max-keys=1000&prefix=pre%20fix%2F%C3%BC%2B%26%3D")


def test_valueless_sub_resources_are_bare_keywords() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, content=b"<Tagging><TagSet/></Tagging>"))
    assert call(make_store(recorder), "get_bucket_tags", "bkt") == {}
    assert recorder.last.url.raw_path == b"/bkt?tagging"
    recorder.answer = lambda request: httpx.Response(200, content=b"<R><UploadId>u-1</UploadId></R>")
    assert call(make_store(recorder), "create_upload", "bkt", "k", NewObject(), "alice") == "u-1"
    assert recorder.last.method == "POST" and recorder.last.url.raw_path == b"/bkt/k?uploads"


def test_a_signer_adds_sigv4_headers() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    signer = Signer(lambda: Credentials("AKIDEXAMPLE", "secret"), "eu-west-3")
    call(make_store(recorder, signer=signer), "head_object", "bkt", "a b")
    headers = recorder.last.headers
    auth = headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/s3/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-content-sha256"} <= set(signed)
    assert len(auth.split("Signature=")[1]) == 64
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert len(headers["x-amz-date"]) == 16 and headers["x-amz-date"].endswith("Z")
    assert headers["host"] == "origin.test:9000"


def test_anonymous_requests_carry_no_signature() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    call(make_store(recorder), "head_object", "bkt", "k")
    assert "authorization" not in recorder.last.headers
    assert "x-amz-date" not in recorder.last.headers


def test_head_object_maps_headers_to_meta() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, headers=HEAD_OK))
    meta = call(make_store(recorder), "head_object", "bkt", "k")
    assert (meta.size, meta.etag, meta.last_modified) == (11, "0123456789abcdef0123456789abcdef", 1735689600.0)
    assert meta.user_metadata == {"owner": "alice"} and meta.tag_count == 2
    assert meta.headers == {"content-type": "text/plain", "cache-control": "no-cache"}


def test_head_object_keeps_checksums_and_only_checksums() -> None:
    headers = {**HEAD_OK, "x-amz-checksum-sha256": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
               "x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-type": "FULL_OBJECT",
               "x-amz-checksum-algorithm": "SHA256"}  # the last as moto echoes it for a multipart object
    recorder = Recorder(lambda request: httpx.Response(200, headers=headers))
    meta = call(make_store(recorder), "head_object", "bkt", "k")
    assert recorder.last.headers["x-amz-checksum-mode"] == "ENABLED"
    assert meta.checksums == {"sha256": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", "crc32": "AAAAAA=="}


def test_put_object_sends_metadata_conditions_and_length() -> None:
    # The condition is judged first (a HEAD: no such key), then passed on with the PUT.
    recorder = Recorder(lambda request: httpx.Response(404) if request.method == "HEAD" and request.url.path != "/bkt"
                        else httpx.Response(200, headers={"etag": '"abc"'}))

    async def body() -> Any:
        yield b"hello "
        yield b"world"

    new = NewObject({"content-type": "text/plain"}, {"owner": "bob"}, {"t": "1 2"})
    meta = call(make_store(recorder), "put_object", "bkt", "k", body(), new, WriteConditions(if_none_match="*"),
                size=11)
    request = recorder.last
    assert request.method == "PUT" and recorder.bodies[-1] == b"hello world"
    assert request.headers["content-length"] == "11" and request.headers["if-none-match"] == "*"
    assert request.headers["x-amz-meta-owner"] == "bob" and request.headers["x-amz-tagging"] == "t=1+2"
    assert meta.etag == "abc" and meta.size == 11


# ---- error mapping ------------------------------------------------------------------------------


def test_origin_error_codes_and_messages_are_carried_through() -> None:
    error = error_of(make_store(Recorder(xml_error("AccessDenied", "no way", 403))), "get_object_tags", "b", "k")
    assert (error.code, error.message, error.status) == ("AccessDenied", "no way", 403)
    error = error_of(make_store(Recorder(xml_error("NoSuchKey", "gone", 404))), "get_object_tags", "b", "k")
    assert (error.code, error.status, error.extra) == ("NoSuchKey", 404, {"Key": "k"})
    error = error_of(make_store(Recorder(xml_error("NoSuchBucket", "gone", 404))), "get_object_tags", "b", "k")
    assert (error.code, error.status, error.extra) == ("NoSuchBucket", 404, {"BucketName": "b"})
    error = error_of(make_store(Recorder(xml_error("BucketNotEmpty", "", 409))), "delete_bucket", "b")
    assert (error.code, error.status) == ("BucketNotEmpty", 409)


def test_a_namespaced_error_document_is_understood() -> None:
    body = f"<Error {NS}><Code>InvalidArgument</Code><Message>bad part</Message></Error>".encode()
    store = make_store(Recorder(lambda request: httpx.Response(400, content=body)))
    error = error_of(store, "get_object_tags", "b", "k")
    assert (error.code, error.message, error.status) == ("InvalidArgument", "bad part", 400)


@pytest.mark.parametrize(("code", "status"), [("RequestTimeTooSkewed", 403), ("InvalidBucketState", 409),
                                              ("ExpiredToken", 400), ("AccessDenied", 401)])
def test_codes_unknown_here_keep_the_origin_status(code: str, status: int) -> None:
    error = error_of(make_store(Recorder(xml_error(code, "m", status))), "get_object_tags", "b", "k")
    assert (error.code, error.status, error.message) == (code, status, "m")


def test_head_404_without_a_body_is_no_such_key_for_an_object_and_no_such_bucket_for_a_bucket() -> None:
    # The bucket exists (its HEAD is 200), the key does not: the store asks which is missing.
    store = make_store(Recorder(lambda request: httpx.Response(200 if request.url.path == "/b" else 404)))
    error = error_of(store, "head_object", "b", "missing/key")
    assert (error.code, error.status, error.extra) == ("NoSuchKey", 404, {"Key": "missing/key"})
    store = make_store(Recorder(lambda request: httpx.Response(404)))
    error = error_of(store, "head_object", "nobucket", "some/key")  # the bucket's own HEAD is 404 too
    assert (error.code, error.status, error.extra) == ("NoSuchBucket", 404, {"BucketName": "nobucket"})
    store = make_store(Recorder(lambda request: httpx.Response(404)))
    error = error_of(store, "head_bucket", "nobucket")
    assert (error.code, error.status, error.extra) == ("NoSuchBucket", 404, {"BucketName": "nobucket"})


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"), (412, "PreconditionFailed"),
                                              (304, "NotModified"), (400, "InvalidRequest"), (429, "InvalidRequest")])
def test_head_errors_without_a_body_map_by_status(status: int, code: str) -> None:
    error = error_of(make_store(Recorder(lambda request: httpx.Response(status))), "head_object", "b", "k")
    assert (error.code, error.status) == (code, status)


def test_a_416_keeps_its_content_range() -> None:
    store = make_store(Recorder(xml_error("InvalidRange", "", 416, **{"content-range": "bytes */10"})))

    async def go() -> None:
        try:
            async for _ in store.read_range("b", "k", "e", 20, 30):
                pass
        finally:
            await store.aclose()

    with pytest.raises(S3Error) as caught:
        asyncio.run(go())
    assert caught.value.code == "InvalidRange" and caught.value.headers == {"content-range": "bytes */10"}


def test_an_error_inside_a_200_copy_answer_is_an_error() -> None:
    body = b"<Error><Code>InternalError</Code><Message>copy failed midway</Message></Error>"
    store = make_store(Recorder(lambda request: httpx.Response(200, content=body)))
    error = error_of(store, "copy_object", "src", "a", "dst", "b", None, None)
    assert error.code == "InternalError" and error.message == "copy failed midway"


# ---- retries ------------------------------------------------------------------------------------


def flaky(failures: int, failure: Handler, success: Handler) -> Handler:
    seen = {"n": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        seen["n"] += 1
        return failure(request) if seen["n"] <= failures else success(request)
    return answer


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_idempotent_get_is_retried_until_it_succeeds(status: int) -> None:
    recorder = Recorder(flaky(3, lambda r: httpx.Response(status), lambda r: httpx.Response(200, headers=HEAD_OK)))
    meta = call(make_store(recorder, retries=3), "head_object", "b", "k")
    assert meta.size == 11 and len(recorder.requests) == 4


def test_connection_errors_are_retried_until_it_succeeds() -> None:
    recorder = Recorder(flaky(2, refuse, lambda r: httpx.Response(200, headers=HEAD_OK)))
    assert call(make_store(recorder, retries=3), "head_object", "b", "k").size == 11
    assert len(recorder.requests) == 3


def test_503_after_every_retry_is_service_unavailable_naming_the_origin() -> None:
    recorder = Recorder(lambda request: httpx.Response(503))
    error = error_of(make_store(recorder, retries=3), "get_object_tags", "b", "k")
    assert len(recorder.requests) == 4
    assert error.code == "ServiceUnavailable" and error.status == 503 and ENDPOINT in error.message


def test_slow_down_after_every_retry_is_carried_through() -> None:
    recorder = Recorder(xml_error("SlowDown", "Please reduce your request rate.", 503))
    error = error_of(make_store(recorder, retries=2), "list_objects", "b", "", "", "", 10)
    assert len(recorder.requests) == 3 and error.code == "SlowDown" and error.status == 503


def test_unreachable_origin_after_every_retry_is_service_unavailable_naming_the_origin() -> None:
    recorder = Recorder(refuse)
    error = error_of(make_store(recorder, retries=2), "head_object", "b", "k")
    assert len(recorder.requests) == 3
    assert error.code == "ServiceUnavailable" and error.status == 503 and ENDPOINT in error.message


def test_no_retries_when_retries_is_zero() -> None:
    recorder = Recorder(lambda request: httpx.Response(503))
    error_of(make_store(recorder, retries=0), "head_object", "b", "k")
    assert len(recorder.requests) == 1


def test_client_errors_are_never_retried() -> None:
    recorder = Recorder(xml_error("AccessDenied", "", 403))
    error_of(make_store(recorder, retries=3), "get_object_tags", "b", "k")
    assert len(recorder.requests) == 1


def test_put_object_is_not_retried() -> None:
    recorder = Recorder(lambda request: httpx.Response(503))

    async def body() -> Any:
        yield b"data"

    error = error_of(make_store(recorder, retries=3), "put_object", "b", "k", body(), NewObject(), WriteConditions(),
                     size=4)
    assert len(recorder.requests) == 1 and error.code == "ServiceUnavailable"


def test_non_idempotent_calls_are_not_retried_on_connection_errors() -> None:
    async def body() -> Any:
        yield b"part"

    for method, args in [("create_upload", ("b", "k", NewObject(), "u")),
                         ("upload_part", ("b", "k", "up", 1, body())),
                         ("complete_upload", ("b", "k", "up", [(1, "e")], WriteConditions()))]:
        recorder = Recorder(refuse)
        error = error_of(make_store(recorder, retries=3), method, *args)
        assert len(recorder.requests) == 1, method
        assert error.code == "ServiceUnavailable"


# ---- listings -----------------------------------------------------------------------------------


def listing_page(contents: list[str], prefixes: list[str], truncated: bool, encoded: bool = True) -> Handler:
    items = "".join(f"<Contents><Key>{k}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified>"
                    f"<ETag>&quot;e-{i}&quot;</ETag><Size>{i}</Size><StorageClass>STANDARD</StorageClass></Contents>"
                    for i, k in enumerate(contents))
    common = "".join(f"<CommonPrefixes><Prefix>{p}</Prefix></CommonPrefixes>" for p in prefixes)
    encoding = "<EncodingType>url</EncodingType>" if encoded else ""
    body = (f"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult {NS}><Name>b</Name>{encoding}"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{items}{common}"
            "</ListBucketResult>").encode()
    return lambda request: httpx.Response(200, content=body)


def test_url_encoded_listing_keys_are_decoded() -> None:
    # As AWS encodes them: a space as "+", a "+" as %2B; other servers send a space as %20.
    recorder = Recorder(listing_page(["100%25.csv", "a%2Bb.txt", "a+b.txt", "caf%C3%A9", "x%20y"],
                                     ["run+books/", "%ED%95%9C/"], True))
    page = call(make_store(recorder), "list_objects", "b", "", "/", "", 7)
    assert [e.key for e in page.entries] == ["100%.csv", "a+b.txt", "a b.txt", "caf\u00e9", "x y"]
    assert page.common_prefixes == ["run books/", "\ud55c/"]
    assert [(e.size, e.etag, e.last_modified) for e in page.entries][:2] == [(0, "e-0", 1735689600.0),
                                                                            (1, "e-1", 1735689600.0)]
    assert page.is_truncated and page.next_marker == "\ud55c/"


def test_an_origin_that_ignored_encoding_type_is_taken_verbatim() -> None:
    recorder = Recorder(listing_page(["100%.csv", "a+b", "%41"], ["p q/"], False, encoded=False))
    page = call(make_store(recorder), "list_objects", "b", "", "/", "", 10)
    assert [e.key for e in page.entries] == ["100%.csv", "a+b", "%41"] and page.common_prefixes == ["p q/"]
    assert b"encoding-type=url" in recorder.last.url.raw_path


def test_a_complete_listing_has_no_next_marker() -> None:
    page = call(make_store(Recorder(listing_page(["a", "b"], [], False))), "list_objects", "b", "", "", "", 10)
    assert [e.key for e in page.entries] == ["a", "b"] and not page.is_truncated and page.next_marker is None


def start_after(request: httpx.Request) -> str | None:
    return dict(httpx.QueryParams(request.url.query.decode())).get("start-after")


def test_a_common_prefix_marker_skips_everything_under_it() -> None:
    recorder = Recorder(listing_page([], [], False))
    call(make_store(recorder), "list_objects", "b", "", "/", "dir/", 10)
    assert start_after(recorder.last) == "dir/\U0010ffff"
    assert b"start-after=dir%2F%F4%8F%BF%BF" in recorder.last.url.raw_path


@pytest.mark.parametrize(("delimiter", "marker"), [("", "dir/"), ("/", "dir/file"), ("/", "a b")])
def test_other_markers_are_sent_as_they_are(delimiter: str, marker: str) -> None:
    recorder = Recorder(listing_page([], [], False))
    call(make_store(recorder), "list_objects", "b", "", delimiter, marker, 10)
    assert start_after(recorder.last) == marker


def test_max_keys_zero_asks_nothing() -> None:
    recorder = Recorder()
    page = call(make_store(recorder), "list_objects", "b", "", "", "", 0)
    assert recorder.requests == [] and page.entries == [] and not page.is_truncated


# ---- ranged reads -------------------------------------------------------------------------------


class Chunks(httpx.AsyncByteStream):
    """A response body that arrives in pieces, as a real origin's does."""

    def __init__(self, data: bytes, piece: int = 100) -> None:
        self.data, self.piece = data, piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for offset in range(0, len(self.data), self.piece):
            yield self.data[offset:offset + self.piece]


def test_read_range_sends_range_and_if_match() -> None:
    data = bytes(range(256)) * 4

    def answer(request: httpx.Request) -> httpx.Response:
        first, last = request.headers["range"].removeprefix("bytes=").split("-")
        return httpx.Response(206, stream=Chunks(data[int(first):int(last) + 1]))

    recorder = Recorder(answer)
    store = make_store(recorder)

    async def go() -> bytes:
        try:
            return b"".join([chunk async for chunk in store.read_range("b", "k y", "abc123", 100, 612)])
        finally:
            await store.aclose()

    assert asyncio.run(go()) == data[100:612]
    request = recorder.last
    assert request.method == "GET" and request.url.raw_path == b"/b/k%20y"
    assert request.headers["range"] == "bytes=100-611" and request.headers["if-match"] == '"abc123"'


def test_read_range_of_a_changed_object_is_precondition_failed() -> None:
    store = make_store(Recorder(xml_error("PreconditionFailed", "", 412)))

    async def go() -> None:
        try:
            async for _ in store.read_range("b", "k", "old", 0, 10):
                pass
        finally:
            await store.aclose()

    with pytest.raises(S3Error) as caught:
        asyncio.run(go())
    assert caught.value.code == "PreconditionFailed" and caught.value.status == 412


def test_read_range_is_retried_on_503() -> None:
    recorder = Recorder(flaky(1, lambda r: httpx.Response(503), lambda r: httpx.Response(206, stream=Chunks(b"0123", 3))))
    store = make_store(recorder)

    async def go() -> bytes:
        try:
            return b"".join([chunk async for chunk in store.read_range("b", "k", "e", 0, 4)])
        finally:
            await store.aclose()

    assert asyncio.run(go()) == b"0123" and len(recorder.requests) == 2


# ---- DeleteObjects ----------------------------------------------------------------------------------


def test_delete_objects_is_one_request_with_per_key_outcomes() -> None:
    keys = ["a.txt", "dir/b&<c>.bin", "line\rbreak", "denied", "a.txt"]
    answer = (f"<?xml version='1.0' encoding='UTF-8'?><DeleteResult {NS}>"
              "<Deleted><Key>a.txt</Key></Deleted><Deleted><Key>dir/b&amp;&lt;c&gt;.bin</Key></Deleted>"
              "<Deleted><Key>line&#13;break</Key></Deleted>"
              "<Error><Key>denied</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
              "</DeleteResult>").encode()
    recorder = Recorder(lambda request: httpx.Response(200, content=answer))
    outcomes = call(make_store(recorder), "delete_objects", "bkt", keys)
    assert len(recorder.requests) == 1
    request, body = recorder.last, recorder.bodies[0]
    assert (request.method, request.url.raw_path) == ("POST", b"/bkt?delete")
    assert request.headers["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    sent = [key.text for key in ElementTree.fromstring(body).iter("{http://s3.amazonaws.com/doc/2006-03-01/}Key")]
    assert sent == keys  # "&", "<" and a carriage return survive the trip
    assert [o.code if o else None for o in outcomes] == [None, None, None, "AccessDenied", None]
    assert outcomes[3] is not None and outcomes[3].message == "no"


def test_keys_xml_cannot_carry_are_deleted_one_by_one() -> None:
    keys = ["fine", "bell\x07key"]
    recorder = Recorder(lambda request: httpx.Response(
        200, content=f"<DeleteResult {NS}><Deleted><Key>fine</Key></Deleted></DeleteResult>".encode())
        if request.method == "POST" else httpx.Response(204))
    assert call(make_store(recorder), "delete_objects", "bkt", keys) == [None, None]
    assert [(r.method, r.url.raw_path) for r in recorder.requests] == [("POST", b"/bkt?delete"),
                                                                        ("DELETE", b"/bkt/bell%07key")]


def test_a_composite_checksum_the_origins_head_gives_without_its_count_gets_it_and_a_type() -> None:
    value = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
    for extra, expected in [
        ({"x-amz-checksum-type": "COMPOSITE"}, (f"{value}-3", "COMPOSITE")),
        ({}, (f"{value}-3", "COMPOSITE")),  # SHA256 of a multipart object is composite: S3 has no other
    ]:
        headers = {**HEAD_OK, "etag": '"0123456789abcdef0123456789abcdef-3"', "x-amz-checksum-sha256": value, **extra}
        meta = call(make_store(Recorder(lambda request, h=headers: httpx.Response(200, headers=h))), "head_object",
                    "bkt", "k")
        assert (meta.checksums["sha256"], meta.checksum_type) == expected
    full = {**HEAD_OK, "etag": '"0123456789abcdef0123456789abcdef-3"', "x-amz-checksum-crc32": "AAAAAA=="}
    meta = call(make_store(Recorder(lambda request: httpx.Response(200, headers=full))), "head_object", "bkt", "k")
    assert (meta.checksums, meta.checksum_type) == ({"crc32": "AAAAAA=="}, None)  # either type: not guessed
    single = {**HEAD_OK, "x-amz-checksum-crc32": "AAAAAA=="}
    meta = call(make_store(Recorder(lambda request: httpx.Response(200, headers=single))), "head_object", "bkt", "k")
    assert (meta.checksums, meta.checksum_type) == ({"crc32": "AAAAAA=="}, "FULL_OBJECT")


def test_multipart_checksums_go_through_to_the_origin() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if "uploads" in request.url.params:
            return httpx.Response(200, content=f"<InitiateMultipartUploadResult {NS}><UploadId>u1</UploadId>"
                                               "</InitiateMultipartUploadResult>".encode())
        if request.method == "PUT":
            return httpx.Response(200, headers={"etag": '"e1"', "x-amz-checksum-crc32": "AAAAAQ=="})
        if request.method == "GET":
            return httpx.Response(200, content=(
                f"<ListPartsResult {NS}><IsTruncated>false</IsTruncated><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
                "<ChecksumType>FULL_OBJECT</ChecksumType><Part><PartNumber>1</PartNumber><ETag>\"e1\"</ETag>"
                "<Size>3</Size><ChecksumCRC32>AAAAAQ==</ChecksumCRC32></Part></ListPartsResult>").encode())
        if request.method == "POST":
            return httpx.Response(200, content=f"<CompleteMultipartUploadResult {NS}/>".encode())
        return httpx.Response(200, headers={**HEAD_OK, "x-amz-checksum-crc32": "AAAAAQ==",
                                            "x-amz-checksum-type": "FULL_OBJECT"})

    recorder = Recorder(answer)
    new = NewObject(checksum_algorithm="crc32", checksum_type="FULL_OBJECT")

    async def body() -> Any:
        yield b"abc"

    async def go() -> Any:
        store = make_store(recorder)
        try:
            upload_id = await store.create_upload("bkt", "k", new, "alice")
            part = await store.upload_part("bkt", "k", upload_id, 1, body(), 3, BodyChecksums({"crc32": "AAAAAQ=="}))
            listing = await store.list_parts("bkt", "k", upload_id)
            meta = await store.complete_upload("bkt", "k", upload_id, [(1, "e1")], WriteConditions(),
                                               SentChecksums({1: {"crc32": "AAAAAQ=="}}, {"crc32": "AAAAAQ=="}))
            return part, listing, meta
        finally:
            await store.aclose()

    part, listing, meta = asyncio.run(go())
    create, put, _, complete = recorder.requests[:4]
    assert (create.headers["x-amz-checksum-algorithm"], create.headers["x-amz-checksum-type"]) == ("CRC32",
                                                                                                   "FULL_OBJECT")
    assert (put.headers["x-amz-checksum-crc32"], put.headers["x-amz-sdk-checksum-algorithm"]) == ("AAAAAQ==", "CRC32")
    assert part.checksums == {"crc32": "AAAAAQ=="}
    assert (listing.checksum_algorithm, listing.checksum_type, listing.parts[0].checksums) == \
        ("crc32", "FULL_OBJECT", {"crc32": "AAAAAQ=="})
    assert complete.headers["x-amz-checksum-crc32"] == "AAAAAQ=="
    assert b"<ChecksumCRC32>AAAAAQ==</ChecksumCRC32>" in recorder.bodies[3]
    assert (meta.checksums, meta.checksum_type) == ({"crc32": "AAAAAQ=="}, "FULL_OBJECT")


def test_object_parts_pages_the_origins_get_object_attributes() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert "attributes" in request.url.params and request.headers["x-amz-object-attributes"] == "ObjectParts"
        first = request.headers["x-amz-part-number-marker"] == "0"
        number = 1 if first else 2
        return httpx.Response(200, content=(
            f"<GetObjectAttributesResponse {NS}><ObjectParts><IsTruncated>{'true' if first else 'false'}"
            f"</IsTruncated><NextPartNumberMarker>{number}</NextPartNumberMarker><Part><PartNumber>{number}"
            f"</PartNumber><Size>{number * 10}</Size><ChecksumSHA1>c{number}</ChecksumSHA1></Part></ObjectParts>"
            "</GetObjectAttributesResponse>").encode())

    parts = call(make_store(Recorder(answer)), "object_parts", "bkt", "k")
    assert [(p.number, p.size, p.checksums) for p in parts] == [(1, 10, {"sha1": "c1"}), (2, 20, {"sha1": "c2"})]
    silent = Recorder(lambda request: httpx.Response(501, content=b"<Error><Code>NotImplemented</Code></Error>"))
    assert call(make_store(silent), "object_parts", "bkt", "k") == []  # an origin without the call: not known
