"""OIDC tokens: RS256/ES256 JWTs verified against a JWKS (file or URL, refreshed and rate-limited), every refusal a
403 AccessDenied naming its cause and never logging the token; and how authenticate() finds the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cache.s3.errors import S3Error
from conf.settings import AuthSettings, ConfigError, load_settings
from proxy.auth import authenticate, token_of
from proxy.oidc import Jwks, Principal, Verifier, groups_of, loader_of, parse_jwks

ISSUER, AUDIENCE = "https://idp.test", "s3cache"


class Key:
    """A signing key pair and its public JWK."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, use="sig", alg=alg)

    def sign(self, kid: str | None = "", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        headers = {} if kid is None else {"kid": kid or self.kid}
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


@pytest.fixture(scope="module")
def rsa_key() -> Key:
    return Key("RS256", "rsa-1")


@pytest.fixture(scope="module")
def ec_key() -> Key:
    return Key("ES256", "ec-1")


@pytest.fixture(scope="module")
def other_rsa() -> Key:
    return Key("RS256", "rsa-1")  # the same kid, another key: a forger's


def jwks_bytes(*keys: Key) -> bytes:
    return json.dumps({"keys": [k.jwk for k in keys]}).encode()


class Source:
    """A JWKS the test changes at will, counting reads."""

    def __init__(self, *keys: Key) -> None:
        self.data = jwks_bytes(*keys)
        self.fail = False

    def __call__(self) -> bytes:
        if self.fail:
            raise OSError("provider down")
        return self.data


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(source: Source, clock: Clock | None = None, refresh_s: float = 300.0, min_refresh_s: float = 10.0,
         **verifier: Any) -> Verifier:
    jwks = Jwks("test", source, refresh_s, min_refresh_s, background=False, clock=clock or Clock())
    return Verifier(jwks, ISSUER, AUDIENCE, **verifier)


def refusal(verifier: Verifier, token: str) -> str:
    with pytest.raises(S3Error) as exc:
        verifier.verify(token)
    assert (exc.value.code, exc.value.status) == ("AccessDenied", 403)
    assert len(token) < 8 or token not in exc.value.message
    return exc.value.message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def good_claims() -> dict[str, Any]:
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300}


# ---- tokens that verify ---------------------------------------------------------------------------------------


def test_rs256_and_es256_tokens_name_the_user_and_groups(rsa_key: Key, ec_key: Key) -> None:
    verifier = make(Source(rsa_key, ec_key))
    user = verifier.verify(rsa_key.sign(groups=["ml", "admins"]))
    assert user == "alice" and isinstance(user, Principal) and user.groups == ("ml", "admins")
    assert groups_of(user) == ("ml", "admins") and groups_of("bob") == () and groups_of(None) == ()
    user = verifier.verify(ec_key.sign(sub="bob"))
    assert (user, user.groups) == ("bob", ())


def test_the_user_and_groups_claims_are_configurable(rsa_key: Key) -> None:
    verifier = make(Source(rsa_key), user_claim="preferred_username", groups_claim="realm_access.roles")
    token = rsa_key.sign(preferred_username="carol", realm_access={"roles": ["reader", 7]})
    user = verifier.verify(token)
    assert (user, user.groups) == ("carol", ("reader",))  # what is not a string is no group
    verifier = make(Source(rsa_key), groups_claim="https://example.com/groups")  # a namespaced claim, dots and all
    assert verifier.verify(rsa_key.sign(**{"https://example.com/groups": "one"})).groups == ("one",)


def test_a_token_without_kid_verifies_when_the_jwks_has_one_such_key(rsa_key: Key, ec_key: Key) -> None:
    verifier = make(Source(rsa_key, ec_key))
    assert verifier.verify(rsa_key.sign(kid=None)) == "alice"
    two = Key("RS256", "rsa-2")
    verifier = make(Source(rsa_key, two))
    assert "unknown signing key" in refusal(verifier, rsa_key.sign(kid=None))


def test_leeway_admits_a_token_just_expired(rsa_key: Key) -> None:
    token = rsa_key.sign(exp=int(time.time()) - 10)
    assert make(Source(rsa_key), leeway_s=30).verify(token) == "alice"
    assert refusal(make(Source(rsa_key), leeway_s=0), token).endswith("expired")


def test_a_verified_token_is_remembered_until_its_exp(rsa_key: Key, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    verifier = make(Source(rsa_key), leeway_s=0)
    verifier._clock = clock  # the memory's clock
    decodes = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real(*a, **k))
    token = rsa_key.sign()
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    decodes.clear()
    clock.now = exp - 30
    for _ in range(3):
        assert verifier.verify(token) == "alice"
    assert len(decodes) == 1
    clock.now = exp + 1  # past its exp: verified afresh (the library, on the real clock, still admits it)
    assert verifier.verify(token) == "alice" and len(decodes) == 2


# ---- tokens that are refused, each with its cause ---------------------------------------------------------------


def test_each_cause_of_refusal_is_named(rsa_key: Key, ec_key: Key, other_rsa: Key) -> None:
    verifier = make(Source(rsa_key, ec_key), leeway_s=0)
    now = int(time.time())
    cases = {
        "expired": rsa_key.sign(exp=now - 5),
        "not yet valid": rsa_key.sign(nbf=now + 600),
        "wrong audience": rsa_key.sign(aud="someone-else"),
        "wrong issuer": rsa_key.sign(iss="https://evil.test"),
        "bad signature": other_rsa.sign(),
        "unknown signing key (kid not in the JWKS)": rsa_key.sign(kid="nobody"),
        "it has no exp claim": rsa_key.sign(exp=None),
        "it has no aud claim": rsa_key.sign(aud=None),
        "it has no iss claim": rsa_key.sign(iss=None),
        "its sub claim names no user": rsa_key.sign(sub=None),
    }
    for cause, token in cases.items():
        assert refusal(verifier, token) == f"Access Denied: OIDC token refused: {cause}", cause
    assert "wrong audience" in refusal(verifier, ec_key.sign(aud=["a", "b"]))
    assert "names no user" in refusal(verifier, rsa_key.sign(sub="line\nbreak"))
    assert "not yet valid" in refusal(verifier, rsa_key.sign(iat=now + 600))


def test_alg_none_and_hmac_are_never_accepted(rsa_key: Key) -> None:
    verifier = make(Source(rsa_key))
    claims = good_claims()
    none = handmade({"alg": "none", "kid": rsa_key.kid, "typ": "JWT"}, claims)
    none_upper = handmade({"alg": "None", "kid": rsa_key.kid}, claims)
    # The classic confusion: HS256 "signed" with the provider's public key, which anyone holds.
    pem = rsa_key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    unsigned = handmade({"alg": "HS256", "kid": rsa_key.kid}, claims).rsplit(".", 1)[0]
    hs256 = f"{unsigned}.{b64(hmac.new(pem, unsigned.encode(), hashlib.sha256).digest())}"
    for token in (none, none_upper, hs256, handmade({"alg": "RS512", "kid": rsa_key.kid}, claims),
                  handmade({"kid": rsa_key.kid}, claims)):
        assert refusal(verifier, token) == "Access Denied: OIDC token refused: algorithm not allowed (only RS256 and " \
                                           "ES256 are)"


def test_an_algorithm_that_does_not_fit_the_key_is_refused(rsa_key: Key, ec_key: Key) -> None:
    verifier = make(Source(rsa_key, ec_key))
    token = ec_key.sign(kid=rsa_key.kid)  # ES256, naming the RSA key
    assert "algorithm not allowed for this key" in refusal(verifier, token)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30", "é.é.é",
                                   handmade({"alg": "RS256", "kid": 5}, {}), handmade({"alg": "RS256"}, [])])  # type: ignore[arg-type]
def test_garbage_is_refused_not_a_500(rsa_key: Key, token: str) -> None:
    assert refusal(make(Source(rsa_key)), token).startswith("Access Denied: OIDC token refused: ")


def test_a_token_is_never_logged(rsa_key: Key, other_rsa: Key, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source, clock = Source(rsa_key), Clock()
    verifier = make(source, clock)
    tokens = [other_rsa.sign(), rsa_key.sign(kid="gone"), rsa_key.sign(exp=1), rsa_key.sign(kid="also-gone")]
    for token in tokens[:3]:
        refusal(verifier, token)
    source.fail = True
    clock.now += 11
    refusal(verifier, tokens[3])
    assert "provider down" in caplog.text  # the JWKS failure is logged...
    for token in tokens:
        assert token not in caplog.text and token.split(".")[1] not in caplog.text  # ...no token is


# ---- the JWKS: parsed strictly, refreshed on time and on an unknown kid (rate-limited) ---------------------------


def test_parse_jwks_keeps_only_keys_rs256_or_es256_can_use(rsa_key: Key, ec_key: Key) -> None:
    hmac_key = {"kty": "oct", "kid": "h", "k": b64(b"secret")}
    p384 = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    enc = {**rsa_key.jwk, "kid": "enc", "use": "enc"}
    rs512 = {**rsa_key.jwk, "kid": "rs512", "alg": "RS512"}
    broken = {"kty": "RSA", "kid": "broken", "n": "x"}
    data = json.dumps({"keys": [rsa_key.jwk, ec_key.jwk, hmac_key, {**p384, "kid": "p384"}, enc, rs512, broken, 7]})
    assert sorted(parse_jwks(data.encode())) == ["ec-1", "rsa-1"]
    for bad in (b"{}", b"[]", b"not json", b'{"keys": 5}'):
        with pytest.raises(ValueError):
            parse_jwks(bad)


def test_an_unknown_kid_reads_the_jwks_once_rate_limited(rsa_key: Key) -> None:
    clock = Clock()
    source = Source(rsa_key)
    verifier = make(source, clock, min_refresh_s=10)
    assert verifier.verify(rsa_key.sign()) == "alice"
    assert verifier.jwks.reads == 1
    new = Key("RS256", "rsa-2")
    clock.now += 11
    for _ in range(5):  # a forger's stream of unknown kids: one read, not five
        refusal(verifier, new.sign())
    assert verifier.jwks.reads == 2
    source.data = jwks_bytes(new)  # the provider rotates: the new key in, the old one out
    clock.now += 5
    refusal(verifier, new.sign())  # too soon for another read
    assert verifier.jwks.reads == 2
    clock.now += 6
    assert verifier.verify(new.sign(sub="bob")) == "bob"  # the unknown kid reads the rotated JWKS
    assert verifier.jwks.reads == 3
    assert "unknown signing key" in refusal(verifier, rsa_key.sign())  # the removed key no longer verifies


def test_the_jwks_is_read_again_after_the_refresh_interval(rsa_key: Key) -> None:
    clock = Clock()
    source = Source(rsa_key)
    verifier = make(source, clock, refresh_s=60)
    token = rsa_key.sign()
    assert verifier.verify(token) == "alice"
    source.data = jwks_bytes(Key("RS256", "rsa-2"))  # the old key removed
    clock.now += 30
    assert verifier.verify(token) == "alice"  # remembered, and the JWKS is not due
    assert verifier.jwks.reads == 1
    clock.now += 31
    assert "unknown signing key" in refusal(verifier, token)  # read again: even a remembered token is re-judged
    assert verifier.jwks.reads == 2


def test_a_failed_read_keeps_the_keys_in_hand(rsa_key: Key) -> None:
    clock = Clock()
    source = Source(rsa_key)
    verifier = make(source, clock, refresh_s=60)
    assert verifier.verify(rsa_key.sign()) == "alice"
    source.fail = True
    clock.now += 61
    assert verifier.verify(rsa_key.sign(sub="bob")) == "bob"
    source.data, source.fail = b"{half a file", False
    clock.now += 61
    assert verifier.verify(rsa_key.sign(sub="carol")) == "carol"
    assert verifier.jwks.reads == 3


def test_a_jwks_never_read_refuses_every_token(rsa_key: Key) -> None:
    source = Source(rsa_key)
    source.fail = True
    clock = Clock()
    verifier = make(source, clock)
    assert "could not be read" in refusal(verifier, rsa_key.sign())
    source.fail = False
    assert "could not be read" in refusal(verifier, rsa_key.sign())  # not read again at once
    clock.now += 11
    assert verifier.verify(rsa_key.sign()) == "alice"


def test_a_jwks_file(tmp_path: Path, rsa_key: Key) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks_bytes(rsa_key))
    assert loader_of(str(path), 1.0)() == path.read_bytes()
    assert loader_of(path.as_uri(), 1.0)() == path.read_bytes()


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, Source, list[float]]]:
    """A JWKS served over HTTP: (its URL, what it serves, when each request came)."""
    source = Source()
    hits: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(time.monotonic())
            body = source()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", source, hits
    server.shutdown()
    server.server_close()


def test_a_jwks_url_is_fetched_and_refreshed_in_the_background(jwks_server: tuple[str, Source, list[float]],
                                                               rsa_key: Key) -> None:
    url, source, hits = jwks_server
    source.data = jwks_bytes(rsa_key)
    jwks = Jwks(url, loader_of(url, 2.0), refresh_s=0.3, min_refresh_s=0.05)
    verifier = Verifier(jwks, ISSUER, AUDIENCE)
    token = rsa_key.sign()
    assert verifier.verify(token) == "alice" and len(hits) == 1  # the first load is inline
    source.data = jwks_bytes(Key("ES256", "ec-2"))
    time.sleep(0.35)
    assert verifier.verify(token) == "alice"  # due: refreshed in the background, the keys in hand still serve
    deadline = time.monotonic() + 5
    while jwks.version < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(hits) == 2 and "unknown signing key" in refusal(verifier, token)


def test_a_jwks_url_that_is_too_large_or_down(jwks_server: tuple[str, Source, list[float]]) -> None:
    url, source, _ = jwks_server
    source.data = b" " * ((1 << 20) + 1)
    with pytest.raises(ValueError):
        loader_of(url, 2.0)()
    with pytest.raises(OSError):
        loader_of("http://127.0.0.1:1/jwks.json", 2.0)()


# ---- authenticate() in oidc mode ------------------------------------------------------------------------------


def oidc_settings(tmp_path: Path, *keys: Key, **more: Any) -> AuthSettings:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks_bytes(*keys))
    return AuthSettings.model_validate({"mode": "oidc", "oidc_jwks": str(path), "oidc_issuer": ISSUER,
                                        "oidc_audience": AUDIENCE, **more})


def call(settings: AuthSettings, headers: dict[str, str], query: dict[str, str] | None = None,
         raw_query: str = "") -> str | None:
    return authenticate(settings, "GET", "/b/k", raw_query, headers, query or {}).user


def test_the_token_is_found_as_bearer_or_as_the_session_token(tmp_path: Path, rsa_key: Key) -> None:
    settings = oidc_settings(tmp_path, rsa_key)
    token = rsa_key.sign(groups=["g"])
    sigv4 = "AWS4-HMAC-SHA256 Credential=any/20260101/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=ab"
    for headers, query in (({"authorization": f"Bearer {token}"}, {}),
                           ({"authorization": f"bearer  {token} "}, {}),
                           ({"authorization": sigv4, "x-amz-security-token": token}, {}),
                           ({}, {"X-Amz-Security-Token": token}),
                           ({}, {"x-amz-security-token": token})):
        user = call(settings, headers, query)
        assert user == "alice" and groups_of(user) == ("g",), (headers, query)
    assert token_of({}, {}) is None and token_of({"authorization": sigv4}, {}) is None


def test_oidc_mode_without_a_token(tmp_path: Path, rsa_key: Key) -> None:
    settings = oidc_settings(tmp_path, rsa_key)
    with pytest.raises(S3Error) as exc:
        call(settings, {})
    assert exc.value.code == "AccessDenied" and "requires an OIDC token" in exc.value.message
    with pytest.raises(S3Error) as exc:
        call(settings, {"authorization": "Bearer "})
    assert exc.value.code == "AccessDenied" and "empty" in exc.value.message
    assert call(oidc_settings(tmp_path, rsa_key, anonymous=True), {}) is None


def test_oidc_mode_still_verifies_sigv4_users_beside_tokens(tmp_path: Path, rsa_key: Key) -> None:
    settings = oidc_settings(tmp_path, rsa_key, users={"svc": "svc-secret"})
    request = AWSRequest(method="GET", url="http://localhost:29998/b/k")
    S3SigV4Auth(Credentials("svc", "svc-secret"), "s3", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()} | {"host": "localhost:29998"}
    assert call(settings, headers) == "svc"
    headers["authorization"] = headers["authorization"][:-4] + "0000"
    with pytest.raises(S3Error) as exc:
        call(settings, headers)
    assert exc.value.code == "SignatureDoesNotMatch"


def test_an_expired_presigned_url_is_refused_before_its_token(tmp_path: Path, rsa_key: Key) -> None:
    query = {"X-Amz-Credential": "any/20200101/us-east-1/s3/aws4_request", "X-Amz-Date": "20200101T000000Z",
             "X-Amz-Expires": "60", "X-Amz-Signature": "ab", "X-Amz-Security-Token": rsa_key.sign()}
    with pytest.raises(S3Error) as exc:
        call(oidc_settings(tmp_path, rsa_key), {}, query)
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")


def test_settings_refuse_oidc_mode_without_its_three_keys() -> None:
    with pytest.raises(ConfigError, match=r"auth: .*mode oidc needs auth\.oidc_jwks, auth\.oidc_issuer"):
        load_settings(env={"S3CACHE_AUTH_MODE": "oidc", "S3CACHE_AUTH_OIDC_AUDIENCE": "a"})
    settings = load_settings(env={"S3CACHE_AUTH_MODE": "oidc", "S3CACHE_AUTH_OIDC_JWKS": "/etc/jwks.json",
                                  "S3CACHE_AUTH_OIDC_ISSUER": ISSUER, "S3CACHE_AUTH_OIDC_AUDIENCE": AUDIENCE})
    assert (settings.auth.oidc_user_claim, settings.auth.oidc_groups_claim) == ("sub", "groups")
