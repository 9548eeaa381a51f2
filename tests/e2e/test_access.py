"""Who may call, end to end through real worker processes: presigned URLs past their time (SIMPLE and verified
SigV4), and OIDC tokens (a JWT as a Bearer token or as boto3's session token) verified against a JWKS.

Authentication happens before any storage is touched, so every worker here serves a local directory.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import boto3
import httpx
import jwt
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from rig.processes import Worker

SECRET = "alice-secret"


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, config: str) -> Worker:
    workdir = tmp_path_factory.mktemp(name)
    (workdir / "s3cache.toml").write_text(config)
    return Worker(["--config", str(workdir / "s3cache.toml"), "--data", str(workdir / "data")], workdir).start()


@pytest.fixture(scope="module")
def simple_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = _start(tmp_path_factory, "access-simple", '[auth]\nmode = "simple"\n')
    yield w
    w.stop()


@pytest.fixture(scope="module")
def sigv4_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = _start(tmp_path_factory, "access-sigv4", f'[auth]\nmode = "sigv4"\nusers = {{ alice = "{SECRET}" }}\n')
    yield w
    w.stop()


def error_of(response: httpx.Response) -> dict[str, str]:
    """The S3 error XML's elements, by name."""
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Error", response.text
    return {child.tag: child.text or "" for child in root}


def _client(worker: Worker, signature_version: str | None = None, **credentials: str):  # type: ignore[no-untyped-def]
    """boto3 as alice, with her secret (which a sigv4 worker checks)."""
    return boto3.client("s3", endpoint_url=worker.url, region_name="us-east-1",
                        aws_access_key_id=credentials.pop("access_key", "alice"),
                        aws_secret_access_key=credentials.pop("secret", SECRET), **credentials,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      signature_version=signature_version))


def _start_of_a_second() -> None:
    """Presigned times are whole seconds: sign early in one, so a 1-second URL has most of a second to live."""
    while time.time() % 1 > 0.2:
        time.sleep(0.02)


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- 1. presigned URLs past their time --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["simple", "sigv4"])
def test_a_presigned_url_expires(mode: str, request: pytest.FixtureRequest) -> None:
    worker: Worker = request.getfixturevalue(f"{mode}_worker")
    s3v4 = _client(worker, signature_version="s3v4")
    sigv2 = _client(worker)  # boto3's default presigning for S3 is the SigV2 query form
    bucket = f"exp-{uuid.uuid4().hex[:10]}"
    s3v4.create_bucket(Bucket=bucket)
    s3v4.put_object(Bucket=bucket, Key="k", Body=b"before")

    _start_of_a_second()
    get_v4 = s3v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    put_v4 = s3v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    get_v2 = sigv2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    assert "X-Amz-Expires=1" in get_v4 and "AWSAccessKeyId=" in get_v2
    first = httpx.get(get_v4)
    assert (first.status_code, first.content) == (200, b"before")
    assert httpx.get(get_v2).content == b"before"  # SigV2 verified in sigv4 mode, unchecked in simple
    time.sleep(2.1)

    late = httpx.get(get_v4)
    assert late.status_code == 403
    body = error_of(late)
    assert (body["Code"], body["Message"], body["X-Amz-Expires"]) == ("AccessDenied", "Request has expired", "1")
    assert body["Expires"].endswith("Z") and body["ServerTime"] > body["Expires"]
    late_put = httpx.put(put_v4, content=b"after")
    assert late_put.status_code == 403 and error_of(late_put)["Message"] == "Request has expired"
    assert s3v4.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"  # the refused PUT changed nothing

    late_v2 = httpx.get(get_v2)
    assert late_v2.status_code == 403
    body = error_of(late_v2)
    assert (body["Code"], body["Message"]) == ("AccessDenied", "Request has expired")
    assert "X-Amz-Expires" not in body and body["ServerTime"] > body["Expires"]


@pytest.mark.parametrize("mode", ["simple", "sigv4"])
def test_x_amz_expires_over_a_week_or_not_a_number(mode: str, request: pytest.FixtureRequest) -> None:
    worker: Worker = request.getfixturevalue(f"{mode}_worker")
    s3 = _client(worker, signature_version="s3v4")
    bucket = f"week-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    week = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604800)
    assert httpx.get(week).status_code == 200  # a week exactly is the longest allowed
    over = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    # boto3 signs a URL over a week without complaint (its signature is right); S3, and s3cache, refuse it.
    for url, message in ((over, "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
                         (_with_query(week, **{"X-Amz-Expires": "604801"}),
                          "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
                         (_with_query(week, **{"X-Amz-Expires": "soon"}), "X-Amz-Expires should be a number")):
        response = httpx.get(url)
        assert response.status_code == 400, response.text
        body = error_of(response)
        assert (body["Code"], body["Message"]) == ("AuthorizationQueryParametersError", message)


# ---- 2. OIDC: a JWT as the Bearer token or as boto3's session token -----------------------------------------------

ISSUER, AUDIENCE = "https://idp.s3cache.test", "s3cache-e2e"
REFRESH_S, MIN_REFRESH_S = 3.0, 1.0


class SigningKey:
    """A key pair of the test's identity provider (RSA or EC P-256) and its public JWK."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid = alg, kid
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk.update(kid=kid, use="sig", alg=alg)

    def token(self, user: str = "alice", kid: str | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"sub-{uuid.uuid4().hex[:8]}", "preferred_username": user,
                "groups": ["ml"], "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.private, algorithm=self.alg, headers={"kid": kid or self.kid})


def write_jwks(path: Path, *keys: SigningKey) -> None:
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps({"keys": [k.jwk for k in keys]}))
    staged.replace(path)  # as a provider's file is replaced: never half-written


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{b64(header)}.{b64(claims)}."


@pytest.fixture(scope="module")
def idp_keys() -> dict[str, SigningKey]:
    return {"rsa": SigningKey("RS256", "rsa-1"), "ec": SigningKey("ES256", "ec-1"),
            "forger": SigningKey("RS256", "rsa-1"),  # the provider's kid, someone else's key
            "stranger": SigningKey("RS256", "not-published")}


def _start_oidc(tmp_path_factory: pytest.TempPathFactory, name: str, *keys: SigningKey) -> tuple[Worker, Path]:
    workdir = tmp_path_factory.mktemp(name)
    jwks = workdir / "jwks.json"
    write_jwks(jwks, *keys)
    config = (f'[auth]\nmode = "oidc"\noidc_jwks = "{jwks}"\noidc_issuer = "{ISSUER}"\n'
              f'oidc_audience = "{AUDIENCE}"\noidc_leeway_s = 0\noidc_user_claim = "preferred_username"\n'
              f"oidc_jwks_refresh_s = {REFRESH_S}\noidc_jwks_min_refresh_s = {MIN_REFRESH_S}\n")
    return _start(tmp_path_factory, name, config), jwks


@pytest.fixture(scope="module")
def oidc_worker(tmp_path_factory: pytest.TempPathFactory, idp_keys: dict[str, SigningKey]) -> Iterator[Worker]:
    w, _ = _start_oidc(tmp_path_factory, "access-oidc", idp_keys["rsa"], idp_keys["ec"])
    yield w
    w.stop()


def _token_client(worker: Worker, token: str, signature_version: str | None = None):  # type: ignore[no-untyped-def]
    """boto3 carrying the JWT as its session token, beside an access key and secret that mean nothing."""
    return _client(worker, signature_version, access_key=f"any-{uuid.uuid4().hex[:6]}", secret="whatever",
                   aws_session_token=token)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _logged(worker: Worker, needle: str) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if needle in worker.log():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("alg", ["rsa", "ec"])
def test_a_valid_token_works_through_boto3_and_as_bearer(oidc_worker: Worker, idp_keys: dict[str, SigningKey],
                                                         alg: str) -> None:
    tag = uuid.uuid4().hex[:6]
    user = f"alice-{alg}-{tag}"
    token = idp_keys[alg].token(user)
    s3 = _token_client(oidc_worker, token)
    bucket = f"oidc-{tag}"
    s3.create_bucket(Bucket=bucket)
    data = bytes(range(256)) * 1000
    s3.put_object(Bucket=bucket, Key="boto3", Body=data)
    assert s3.get_object(Bucket=bucket, Key="boto3")["Body"].read() == data

    put = httpx.put(f"{oidc_worker.url}/{bucket}/bearer", content=data[::-1], headers=_bearer(token))
    assert put.status_code == 200, put.text
    got = httpx.get(f"{oidc_worker.url}/{bucket}/bearer", headers=_bearer(token))
    assert (got.status_code, got.content) == (200, data[::-1])
    assert s3.get_object(Bucket=bucket, Key="bearer")["Body"].read() == data[::-1]

    url = _token_client(oidc_worker, token, "s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "boto3"}, ExpiresIn=60)
    assert "X-Amz-Security-Token=" in url
    presigned = httpx.get(url)
    assert (presigned.status_code, presigned.content) == (200, data)

    # The access log names the user from the configured claim (not the access key, not sub).
    assert _logged(oidc_worker, f"{user} PutObject {bucket} 'boto3' 200 ")
    assert _logged(oidc_worker, f"{user} GetObject {bucket} 'bearer' 200 {len(data)} ")
    assert token not in oidc_worker.log()


def test_without_a_token_access_is_denied(oidc_worker: Worker) -> None:
    response = httpx.get(f"{oidc_worker.url}/")
    assert response.status_code == 403 and error_of(response)["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        _client(oidc_worker).list_buckets()  # SigV4 with keys no user has, and no token
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _bad_tokens(keys: dict[str, SigningKey]) -> dict[str, str]:
    """cause in the error message -> a token refused for it."""
    rsa_key, now = keys["rsa"], int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "mallory", "exp": now + 600}
    return {
        "expired": rsa_key.token("mallory", exp=now - 60, iat=now - 120),
        "not yet valid": rsa_key.token("mallory", nbf=now + 600),
        "wrong audience": rsa_key.token("mallory", aud="another-service"),
        "wrong issuer": rsa_key.token("mallory", iss="https://evil.test"),
        "bad signature": keys["forger"].token("mallory"),
        "unknown signing key": keys["stranger"].token("mallory"),
        "algorithm not allowed": _unsigned({"alg": "none", "typ": "JWT", "kid": rsa_key.kid}, claims),
    }


def test_bad_tokens_are_access_denied_and_change_nothing(oidc_worker: Worker,
                                                         idp_keys: dict[str, SigningKey]) -> None:
    good = _token_client(oidc_worker, idp_keys["rsa"].token("owner"))
    bucket = f"guard-{uuid.uuid4().hex[:8]}"
    good.create_bucket(Bucket=bucket)
    good.put_object(Bucket=bucket, Key="k", Body=b"original")
    bad_tokens = _bad_tokens(idp_keys)
    for cause, token in bad_tokens.items():
        s3 = _token_client(oidc_worker, token)
        for operation, params in (("put_object", {"Key": "k", "Body": b"overwritten"}),
                                  ("put_object", {"Key": f"new-{cause}", "Body": b"x"}),
                                  ("delete_object", {"Key": "k"}), ("get_object", {"Key": "k"})):
            with pytest.raises(ClientError) as exc:
                getattr(s3, operation)(Bucket=bucket, **params)
            error = exc.value.response
            assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (403, "AccessDenied"), cause
            assert cause in error["Error"]["Message"], (cause, error["Error"]["Message"])
        for method in ("PUT", "GET", "DELETE"):
            response = httpx.request(method, f"{oidc_worker.url}/{bucket}/k", headers=_bearer(token),
                                     content=b"overwritten" if method == "PUT" else None)
            assert response.status_code == 403, (cause, method, response.text)
            body = error_of(response)
            assert body["Code"] == "AccessDenied" and cause in body["Message"], (cause, body)
    # Nothing changed: the object is what it was, and no refused PUT made a key.
    assert good.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"
    assert [o["Key"] for o in good.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    log = oidc_worker.log()
    for token in bad_tokens.values():
        assert token not in log and token.split(".")[1] not in log  # never a token in a log line
    assert "InternalError" not in log and "Traceback" not in log


def test_a_rotated_jwks_is_picked_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    old, new, newer = SigningKey("RS256", "2026-01"), SigningKey("ES256", "2026-02"), SigningKey("RS256", "2026-03")
    worker, jwks = _start_oidc(tmp_path_factory, "access-rotation", old)
    try:
        def status(token: str) -> int:
            return httpx.get(f"{worker.url}/", headers=_bearer(token)).status_code

        old_token = old.token("alice")
        assert status(old_token) == 200
        # The provider rotates: the new key in, the old one out. A token of the new key names a kid the worker
        # has not seen, which makes it read the JWKS again at once (at most every oidc_jwks_min_refresh_s).
        write_jwks(jwks, new)
        time.sleep(MIN_REFRESH_S + 0.2)
        new_token = new.token("alice")
        assert status(new_token) == 200
        assert status(old_token) == 403  # the keys were read again: the old key is gone, and so is its token

        # Rotated again, with no token of the newer key to announce it: picked up after the refresh interval.
        write_jwks(jwks, newer)
        rotated = time.monotonic()
        while status(new_token) == 200:
            assert time.monotonic() - rotated < REFRESH_S + 2, "the JWKS was not read again after the interval"
            time.sleep(0.1)
        assert status(newer.token("alice")) == 200
    finally:
        worker.stop()
