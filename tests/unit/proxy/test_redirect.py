"""Redirect tokens (proxy.redirect): a token admits the one read it was made for, and nothing else.

First check_token against the operation a request resolves to; then the whole S3 app (SigV4 verified, a
directory under storage) driven over ASGI, where a token must not stand in for a signature of anything
but that read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from cache.s3.errors import S3Error
from conf.settings import Settings
from proxy.app import S3App, build_app
from proxy.context import Context
from proxy.http import Request
from proxy.operations import resolve
from proxy.redirect import TOKEN_PARAMS, _temporary_redirect, check_token, take_token

SECRET = "unit-cluster-secret"
TARGET = "http://127.0.0.1:9"
COPY = {"x-amz-copy-source": "/b/other"}
ORIGINAL = b"the original bytes"


def context(secret: str | None = SECRET) -> Context:
    settings = Settings.model_validate({"cluster": {"secret": secret}})
    return Context(store=object(), settings=settings)  # type: ignore[arg-type]  # tokens never touch a store


def make_request(method: str, path: str, query: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> Request:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": urlencode(query or {}).encode(),
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}

    async def receive() -> dict[str, object]:
        raise AssertionError("a token check must not read the body")

    return Request(scope, receive)


def issue(ctx: Context, method: str = "GET", path: str = "/b/k", user: str | None = "alice",
          query: dict[str, str] | None = None) -> dict[str, str]:
    """The query of the Location a 307 for this request carries (its token and the request's own query)."""
    request = make_request(method, path, query)
    request.user = user
    response = _temporary_redirect(ctx, request, resolve(request), TARGET)
    assert response.status == 307
    return dict(parse_qsl(urlsplit(response.headers["location"]).query, keep_blank_values=True))


def admit(ctx: Context, method: str, path: str, query: dict[str, str],
          headers: dict[str, str] | None = None) -> str | None:
    """What proxy.app does with a request carrying a token: take it, resolve, check; the user it admits."""
    request = make_request(method, path, query, headers)
    token = take_token(request)
    assert token is not None
    assert not set(TOKEN_PARAMS) & request.query.keys()  # never seen by the operation
    check_token(ctx, request, resolve(request), token)
    return request.user


def refused(ctx: Context, method: str, path: str, query: dict[str, str],
            headers: dict[str, str] | None = None) -> S3Error:
    with pytest.raises(S3Error) as caught:
        admit(ctx, method, path, query, headers)
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)
    assert "token" in caught.value.message
    return caught.value


def test_a_token_admits_the_read_it_was_made_for() -> None:
    ctx = context()
    get = issue(ctx, "GET")
    assert admit(ctx, "GET", "/b/k", get) == "alice"
    assert admit(ctx, "GET", "/b/k", get, {"range": "bytes=5-9"}) == "alice"  # a 307 keeps the Range
    head = issue(ctx, "HEAD")
    assert admit(ctx, "HEAD", "/b/k", head) == "alice"
    anonymous = issue(ctx, "GET", user=None)
    assert admit(ctx, "GET", "/b/k", anonymous) is None
    odd = issue(ctx, "GET", "/b/dir/a%20b%3Fc~", query={"response-content-type": "text/plain"})
    assert admit(ctx, "GET", "/b/dir/a%20b%3Fc~", odd) == "alice"


@pytest.mark.parametrize(
    ("method", "path", "query", "headers"),
    [
        ("PUT", "/b/k", {}, None),  # PutObject
        ("PUT", "/b/k", {"tagging": ""}, None),  # PutObjectTagging
        ("DELETE", "/b/k", {"tagging": ""}, None),  # DeleteObjectTagging
        ("DELETE", "/b/k", {}, None),  # DeleteObject
        ("PUT", "/b/k", {}, COPY),  # CopyObject onto the key
        ("POST", "/b/k", {"uploads": ""}, None),  # CreateMultipartUpload
        ("PUT", "/b/k", {"uploadId": "u", "partNumber": "1"}, None),  # UploadPart
        ("PUT", "/b/k", {"uploadId": "u", "partNumber": "1"}, COPY),  # UploadPartCopy
        ("POST", "/b/k", {"uploadId": "u"}, None),  # CompleteMultipartUpload
        ("DELETE", "/b/k", {"uploadId": "u"}, None),  # AbortMultipartUpload
        ("GET", "/b/k", {"tagging": ""}, None),  # GetObjectTagging: a GET of the key, not its bytes
        ("GET", "/b/k", {"uploadId": "u"}, None),  # ListParts
        ("HEAD", "/b/k", {}, None),  # HeadObject with a GET's token: the method is bound
        ("GET", "/b/other", {}, None),  # another key
        ("GET", "/b/k/", {}, None),
        ("GET", "/c/k", {}, None),  # the same key in another bucket
        ("GET", "/b", {}, None),  # ListObjects of the bucket
        ("DELETE", "/b", {}, None),  # DeleteBucket
        ("POST", "/b", {"delete": ""}, None),  # DeleteObjects
        ("GET", "/", {}, None),  # ListBuckets
    ],
)
def test_a_get_token_admits_nothing_else(method: str, path: str, query: dict[str, str],
                                         headers: dict[str, str] | None) -> None:
    ctx = context()
    refused(ctx, method, path, {**query, **issue(ctx, "GET")}, headers)


def test_a_head_token_does_not_make_a_get() -> None:
    ctx = context()
    head = issue(ctx, "HEAD")
    refused(ctx, "GET", "/b/k", head)
    refused(ctx, "PUT", "/b/k", head)


def test_non_read_operations_are_refused_whatever_the_token() -> None:
    ctx = context()
    error = refused(ctx, "PUT", "/b/k", {"x-s3cache-exp": "9999999999", "x-s3cache-user": "", "x-s3cache-sig": "x"})
    assert "PutObject" in error.message


def _tampered(token: dict[str, str]) -> Iterator[dict[str, str]]:
    sig = token["x-s3cache-sig"]
    yield {**token, "x-s3cache-sig": ("0" if sig[0] != "0" else "1") + sig[1:]}
    yield {**token, "x-s3cache-sig": ""}
    yield {**token, "x-s3cache-sig": "é" * 64}  # not ASCII: refused, not a TypeError (500)
    yield {**token, "x-s3cache-user": "mallory"}
    yield {**token, "x-s3cache-user": ""}
    yield {**token, "x-s3cache-exp": str(int(token["x-s3cache-exp"]) + 3600)}
    yield {**token, "x-s3cache-exp": "1"}
    yield {**token, "x-s3cache-exp": "²"}  # a digit to str.isdigit, not to int()
    yield {**token, "x-s3cache-exp": "9" * 5000}  # more digits than int() takes
    yield {k: v for k, v in token.items() if k != "x-s3cache-exp"}


def test_tampered_tokens_are_refused() -> None:
    ctx = context()
    for query in _tampered(issue(ctx, "GET")):
        refused(ctx, "GET", "/b/k", query)


def test_expired_and_foreign_tokens_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    token = issue(ctx, "GET")
    refused(context("another-secret"), "GET", "/b/k", token)
    refused(context(None), "GET", "/b/k", token)
    # the token of the earlier form (HMAC over "read", bucket, key, expiry, user: no operation, no method)
    expiry = token["x-s3cache-exp"]
    old = hmac.new(SECRET.encode(), f"read\nb\nk\n{expiry}\nalice".encode(), hashlib.sha256).hexdigest()
    refused(ctx, "GET", "/b/k", {**token, "x-s3cache-sig": old})
    monkeypatch.setattr(time, "time", lambda: int(expiry) + 1.0)
    refused(ctx, "GET", "/b/k", token)


def test_without_a_signature_there_is_no_token() -> None:
    request = make_request("GET", "/b/k", {"x-s3cache-exp": "1", "x-s3cache-user": "u"})
    assert take_token(request) is None
    assert request.query == {"x-s3cache-exp": "1", "x-s3cache-user": "u"}


# ---- the app: SigV4 verified, a token is no signature of anything but its read --------------------------------


@pytest.fixture
def app(tmp_path: Path) -> tuple[S3App, Path]:
    """The S3 app over a directory (bucket bkt: k and other), verifying SigV4 for alice, with a cluster secret."""
    data = tmp_path / "data"
    (data / "bkt").mkdir(parents=True)
    (data / "bkt" / "k").write_bytes(ORIGINAL)
    (data / "bkt" / "other").write_bytes(b"another object")
    settings = Settings.model_validate({"storage": {"data_dir": str(data)}, "cluster": {"secret": SECRET},
                                        "auth": {"mode": "sigv4", "users": {"alice": "alice-secret"}}})
    return build_app(settings), data


def _access_denied(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    root = ElementTree.fromstring(response.content)
    assert (root.tag, root.findtext("Code")) == ("Error", "AccessDenied"), response.text
    return root.findtext("Message") or ""


def test_the_app_admits_a_token_only_for_its_read(app: tuple[S3App, Path]) -> None:
    s3app, data = app
    get, head = issue(s3app.ctx, "GET", "/bkt/k"), issue(s3app.ctx, "HEAD", "/bkt/k")
    tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"

    async def go() -> None:
        transport = httpx.ASGITransport(app=s3app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://s3cache") as client:
            assert "SigV4" in _access_denied(await client.get("/bkt/k"))  # unsigned: refused
            r = await client.get("/bkt/k", params=get)
            assert r.status_code == 200 and r.content == ORIGINAL
            attempts = [
                ("PUT", "/bkt/k", {}, {}, b"overwritten"),
                ("PUT", "/bkt/k", {"tagging": ""}, {}, tagging),
                ("DELETE", "/bkt/k", {"tagging": ""}, {}, b""),
                ("DELETE", "/bkt/k", {}, {}, b""),
                ("PUT", "/bkt/k", {}, {"x-amz-copy-source": "/bkt/other"}, b""),
                ("POST", "/bkt/k", {"uploads": ""}, {}, b""),
                ("GET", "/bkt/other", {}, {}, b""),
                ("GET", "/bkt/k", {"tagging": ""}, {}, b""),
            ]
            for method, path, query, headers, body in attempts:
                r = await client.request(method, path, params={**query, **get}, headers=headers, content=body)
                assert "token" in _access_denied(r), (method, path, query)
            assert (await client.head("/bkt/k", params=get)).status_code == 403  # a GET's token makes no HEAD
            assert (await client.get("/bkt/k", params=head)).status_code == 403  # nor a HEAD's a GET
            r = await client.head("/bkt/k", params=head)
            assert r.status_code == 200 and r.headers["content-length"] == str(len(ORIGINAL))
            r = await client.get("/bkt/k", params=get)
            assert r.status_code == 200 and r.content == ORIGINAL
            r = await client.get("/bkt/k", params={"tagging": ""})
            assert r.status_code == 403  # and unsigned, still nothing

    asyncio.run(go())
    assert (data / "bkt" / "k").read_bytes() == ORIGINAL
    assert sorted(p.name for p in (data / "bkt").iterdir() if not p.name.startswith(".")) == ["k", "other"]
