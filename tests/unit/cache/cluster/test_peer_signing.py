"""Cluster-internal trust: peer requests are signed per request (cache.cluster.peers.sign_request), checked by the
peer endpoint (proxy.peer), redirect tokens are checked against the current and the previous secret
(proxy.redirect), and secret settings never show in a repr or a JSON dump (conf.settings)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from cache.cluster.peers import EXPIRES_HEADER, META_PATH, PEER_PATH, SIGNATURE_HEADER, sign_request, verify_request
from cache.s3.errors import S3Error
from conf.settings import REVEAL_SECRETS, ConfigError, Settings, load_settings
from proxy.context import Context
from proxy.http import Request
from proxy.operations import resolve
from proxy.peer import _query
from proxy.redirect import _temporary_redirect, check_token, take_token

SECRET = "unit-peer-secret"
OLD = "unit-old-secret"
QUERY = {"b": "bkt", "k": "data/a.bin", "e": "etag-1", "s": 10 << 20, "i": 1, "lo": 0, "hi": 4096, "bs": 4 << 20}


def pairs(query: dict[str, object]) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in query.items()]


def verify(headers: dict[str, str], query: dict[str, object], secrets: tuple[str, ...] = (SECRET,),
           path: str = PEER_PATH, method: str = "GET", now: float | None = None) -> bool:
    return verify_request(secrets, method, path, pairs(query), headers[EXPIRES_HEADER], headers[SIGNATURE_HEADER],
                          now=now)


def test_a_signed_request_verifies_and_carries_no_secret() -> None:
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30)
    assert set(headers) == {EXPIRES_HEADER, SIGNATURE_HEADER}
    assert SECRET not in json.dumps(headers)
    assert verify(headers, QUERY)
    assert verify(headers, dict(reversed(QUERY.items())))  # the query is signed sorted: its order does not matter


@pytest.mark.parametrize("change", [{"k": "data/b.bin"}, {"b": "other"}, {"e": "etag-2"}, {"s": 1}, {"i": 2},
                                    {"lo": 4096}, {"hi": 8192}, {"bs": 1 << 20}, {"extra": "1"}])
def test_a_signature_for_one_request_is_refused_for_another(change: dict[str, object]) -> None:
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30)
    assert not verify(headers, {**QUERY, **change})


def test_a_signature_is_bound_to_the_path_and_the_method() -> None:
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30)
    assert not verify(headers, QUERY, path=META_PATH)
    assert not verify(headers, QUERY, method="HEAD")


def test_a_duplicated_parameter_is_refused() -> None:
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30)
    assert not verify_request((SECRET,), "GET", PEER_PATH, [*pairs(QUERY), ("k", "other")],
                              headers[EXPIRES_HEADER], headers[SIGNATURE_HEADER])


def test_an_expired_signature_is_refused() -> None:
    now = time.time()
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30, now=now)
    assert verify(headers, QUERY, now=now + 29)
    assert not verify(headers, QUERY, now=now + 32)
    # nor can the expiry be moved on: it is signed
    later = {**headers, EXPIRES_HEADER: str(int(headers[EXPIRES_HEADER]) + 3600)}
    assert not verify(later, QUERY, now=now + 32)


@pytest.mark.parametrize("expires", ["", "soon", "-1", "1e9", "9" * 13, "１２３"])
def test_a_malformed_expiry_is_refused(expires: str) -> None:
    headers = sign_request(SECRET, "GET", PEER_PATH, QUERY, 30)
    assert not verify({**headers, EXPIRES_HEADER: expires}, QUERY)


def test_the_previous_secret_is_accepted_and_an_unknown_one_refused() -> None:
    old = sign_request(OLD, "GET", PEER_PATH, QUERY, 30)
    assert verify(old, QUERY, secrets=(SECRET, OLD))
    assert not verify(old, QUERY, secrets=(SECRET,))
    assert not verify(sign_request("unknown", "GET", PEER_PATH, QUERY, 30), QUERY, secrets=(SECRET, OLD))
    assert not verify(sign_request("", "GET", PEER_PATH, QUERY, 30), QUERY, secrets=("",))  # no secret: no trust


# ---- the peer endpoint --------------------------------------------------------------------------------------


def context(secret: str | None = SECRET, previous: str | None = None) -> Context:
    settings = Settings.model_validate({"cluster": {"secret": secret, "previous_secret": previous}})
    return Context(store=object(), settings=settings)  # type: ignore[arg-type]


def scope(query: dict[str, object], headers: dict[str, str], path: str = PEER_PATH) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "query_string": urlencode(query).encode(),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}


def refused(ctx: Context, query: dict[str, object], headers: dict[str, str]) -> None:
    with pytest.raises(S3Error) as caught:
        _query(ctx, scope(query, headers))
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)


def test_the_peer_endpoint_admits_exactly_the_signed_request() -> None:
    ctx = context()
    query = {**QUERY, "bs": ctx.settings.cache.block_size_bytes}
    headers = sign_request(SECRET, "GET", PEER_PATH, query, 30)
    assert _query(ctx, scope(query, headers))["k"] == "data/a.bin"
    refused(ctx, {**query, "k": "data/other.bin"}, headers)
    refused(ctx, {**query, "lo": 1, "hi": 2}, headers)
    refused(ctx, query, {})
    refused(ctx, query, {"x-s3cache-secret": SECRET})  # the old protocol's raw secret admits nothing
    refused(ctx, query, sign_request(SECRET, "GET", PEER_PATH, query, -5))  # expired
    refused(context(secret=None), query, headers)  # a worker without a secret trusts nobody


def test_the_peer_endpoint_accepts_the_previous_secret_during_a_rotation() -> None:
    query = {**QUERY, "bs": Settings().cache.block_size_bytes}
    old = sign_request(OLD, "GET", PEER_PATH, query, 30)
    new = sign_request(SECRET, "GET", PEER_PATH, query, 30)
    rotating = context(SECRET, previous=OLD)
    assert _query(rotating, scope(query, old)) and _query(rotating, scope(query, new))
    refused(context(SECRET), query, old)  # the previous secret dropped: its signatures no longer admit
    assert _query(context(OLD), scope(query, old))
    refused(context(OLD), query, new)  # (a worker not yet rotated reads from rotated ones: they sign with new,
    # so the rotation makes every worker accept the old one first; see README "Rotating the cluster secret")
    refused(rotating, query, sign_request("unknown", "GET", PEER_PATH, query, 30))


# ---- redirect tokens ----------------------------------------------------------------------------------------


def request(path: str = "/b/k", query: dict[str, str] | None = None) -> Request:
    raw = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
           "query_string": urlencode(query or {}).encode(), "headers": []}

    async def receive() -> dict[str, object]:
        raise AssertionError("no body")

    return Request(raw, receive)


def token_query(ctx: Context) -> dict[str, str]:
    req = request()
    req.user = "alice"
    location = _temporary_redirect(ctx, req, resolve(req), "http://127.0.0.1:9").headers["location"]
    return dict(parse_qsl(urlsplit(location).query))


def admits(ctx: Context, query: dict[str, str]) -> bool:
    req = request(query=query)
    token = take_token(req)
    assert token is not None
    try:
        check_token(ctx, req, resolve(req), token)
    except S3Error as error:
        assert error.code == "AccessDenied"
        return False
    return req.user == "alice"


def test_redirect_tokens_of_the_previous_secret_are_accepted_new_ones_signed_with_the_current() -> None:
    old_token = token_query(context(OLD))
    new_token = token_query(context(SECRET, previous=OLD))  # signed with the current secret
    assert admits(context(SECRET, previous=OLD), old_token)
    assert admits(context(SECRET), new_token) and not admits(context(OLD), new_token)
    assert not admits(context(SECRET), old_token)
    assert not admits(context(SECRET, previous=OLD), token_query(context("unknown")))


# ---- secrets in the settings --------------------------------------------------------------------------------


def loaded(tmp_path: Path) -> Settings:
    (tmp_path / "old").write_text(f"  {OLD}\n")
    return load_settings(None, {"S3CACHE_CLUSTER_SECRET": SECRET, "S3CACHE_ORIGIN_SECRET_ACCESS_KEY": "origin-sk"},
                         {"cluster": {"previous_secret_file": tmp_path / "old"},
                          "auth": {"mode": "sigv4", "users": {"alice": "alice-sk"}}})


def test_secret_settings_show_in_no_repr_and_no_plain_dump(tmp_path: Path) -> None:
    settings = loaded(tmp_path)
    assert settings.cluster.secret is not None and settings.cluster.secret.get_secret_value() == SECRET
    assert settings.cluster.previous_secret is not None and settings.cluster.previous_secret.get_secret_value() == OLD
    assert settings.auth.users == {"alice": "alice-sk"}
    shown = [repr(settings), str(settings), repr(settings.cluster), repr(settings.auth), repr(settings.origin),
             json.dumps(settings.model_dump(mode="json")), settings.model_dump_json(), str(settings.model_dump())]
    for text in shown:
        for secret in (SECRET, OLD, "origin-sk", "alice-sk"):
            assert secret not in text, (secret, text[:200])


def test_the_dump_for_child_processes_carries_the_secrets(tmp_path: Path) -> None:
    settings = loaded(tmp_path)
    again = Settings.model_validate(json.loads(json.dumps(settings.model_dump(mode="json",
                                                                              context={REVEAL_SECRETS: True}))))
    assert again.cluster.secret is not None and again.cluster.secret.get_secret_value() == SECRET
    assert again.cluster.previous_secret is not None and again.cluster.previous_secret.get_secret_value() == OLD
    assert again.origin.secret_access_key is not None
    assert again.origin.secret_access_key.get_secret_value() == "origin-sk"
    assert again.auth.users == {"alice": "alice-sk"}


def test_a_previous_secret_and_its_file_both_are_refused(tmp_path: Path) -> None:
    (tmp_path / "old").write_text(OLD)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"S3CACHE_CLUSTER_PREVIOUS_SECRET": OLD},
                      {"cluster": {"previous_secret_file": tmp_path / "old"}})
    assert "cluster.previous_secret_file" in str(caught.value) and OLD not in str(caught.value)
    with pytest.raises(ConfigError, match=r"cluster\.previous_secret_file: .* is empty"):
        (tmp_path / "empty").write_text("\n")
        load_settings(None, {}, {"cluster": {"previous_secret_file": tmp_path / "empty"}})
