"""cache.storage.origin.signing: signatures botocore's signer agrees with, made with the credentials in hand.

Where the credentials come from, and their refresh: test_origin_credentials.py."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from cache.storage.origin.credentials import Credentials
from cache.storage.origin.signing import Signer

# ---- Signer against botocore --------------------------------------------------------------------

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_authorization(
    monkeypatch: pytest.MonkeyPatch, method: str, url: str, headers: dict[str, str], amz_date: str, region: str,
    token: str | None = None,
) -> str:
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: when)
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(BotoCredentials(ACCESS, SECRET, token), "s3", region).add_auth(request)
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    return str(request.headers["Authorization"])


REQUESTS = [
    ("GET", "/bucket/plain.txt", {}),
    ("HEAD", "/bucket/dir/a%20b%2Bc~%C3%A9.txt", {}),
    ("GET", "/bucket/k", {"range": "bytes=0-99", "if-match": '"abc"'}),
    ("GET", "/bucket?delimiter=%2F&encoding-type=url&list-type=2&max-keys=1000&prefix=a%20b%2F", {}),
    ("GET", "/bucket?tagging", {}),
    ("PUT", "/bucket/key?partNumber=2&uploadId=abc%2Bdef", {"content-length": "5", "x-amz-meta-owner": "alice"}),
    ("GET", "/bucket/a//double/slash", {}),
    ("GET", "/", {}),
]


@pytest.mark.parametrize(("method", "path", "extra"), REQUESTS)
@pytest.mark.parametrize("token", [None, "session-token"])
def test_signatures_match_botocore(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, extra: dict[str, str], token: str | None
) -> None:
    signer = Signer(lambda: Credentials(ACCESS, SECRET, token), "eu-central-1")
    headers = {"host": "origin.test:9000", **extra}
    signed = {k.lower(): v for k, v in signer.sign(method, path, headers).items()}
    assert signed["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    if token:
        assert signed["x-amz-security-token"] == token
    expected = botocore_authorization(monkeypatch, method, "http://origin.test:9000" + path,
                                      {**headers, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}, signed["x-amz-date"],
                                      "eu-central-1", token)
    assert signed["authorization"] == expected


def test_a_different_secret_gives_a_different_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    signed = {k.lower(): v for k, v in Signer(lambda: Credentials(ACCESS, "another-secret"), "us-east-1").sign(
        "GET", "/bucket/k", {"host": "origin.test"}).items()}
    expected = botocore_authorization(monkeypatch, "GET", "http://origin.test/bucket/k",
                                      {"host": "origin.test", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
                                      signed["x-amz-date"], "us-east-1")
    assert signed["authorization"].split("Signature=")[0] == expected.split("Signature=")[0]
    assert signed["authorization"] != expected


def test_signed_headers_keep_the_originals() -> None:
    headers = {"host": "origin.test", "range": "bytes=1-2"}
    signed = Signer(lambda: Credentials(ACCESS, SECRET), "us-east-1").sign("GET", "/b/k", headers)
    assert {k.lower(): v for k, v in signed.items()}.items() >= headers.items()
    assert headers == {"host": "origin.test", "range": "bytes=1-2"}  # the caller's dict is not changed
    date = {k.lower(): v for k, v in signed.items()}["x-amz-date"]
    assert f"Credential={ACCESS}/{date[:8]}/us-east-1/s3/aws4_request" in signed["Authorization"]


def test_no_credentials_in_hand_is_an_unsigned_request() -> None:
    headers = {"host": "origin.test", "range": "bytes=1-2"}
    assert Signer(lambda: None, "us-east-1").sign("GET", "/b/k", headers) == headers


def test_each_request_is_signed_with_the_credentials_in_hand_then() -> None:
    held = [Credentials("FIRST", SECRET, "token-1")]
    signer = Signer(lambda: held[0], "us-east-1")

    def signed() -> dict[str, str]:
        return {k.lower(): v for k, v in signer.sign("GET", "/b/k", {"host": "origin.test"}).items()}
    first = signed()
    assert "Credential=FIRST/" in first["authorization"] and first["x-amz-security-token"] == "token-1"
    held[0] = Credentials("SECOND", "other-secret", "token-2")  # a refresh
    second = signed()
    assert "Credential=SECOND/" in second["authorization"] and second["x-amz-security-token"] == "token-2"
    held[0] = Credentials("FIRST", SECRET, "token-1")
    assert signed()["authorization"].split("Signature=")[0] == first["authorization"].split("Signature=")[0]
