"""cache.storage.origin.signing: where origin credentials come from; signatures that botocore's signer agrees with."""

from __future__ import annotations

import datetime
from pathlib import Path

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials

from cache.storage.origin.signing import Credentials, Signer, resolve_credentials

CREDENTIALS_FILE = """\
[default]
aws_access_key_id = FILE_DEFAULT_KEY
aws_secret_access_key = file-default-secret

[work]
aws_access_key_id = FILE_WORK_KEY
aws_secret_access_key = file-work-secret
aws_session_token = file-work-token
"""


@pytest.fixture
def shared_file(tmp_path: Path) -> str:
    path = tmp_path / "credentials"
    path.write_text(CREDENTIALS_FILE)
    return str(path)


@pytest.fixture(autouse=True)
def no_home_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever runs the tests, ~/.aws/credentials is an empty directory's."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


ENV = {"AWS_ACCESS_KEY_ID": "ENV_KEY", "AWS_SECRET_ACCESS_KEY": "env-secret"}


# ---- resolve_credentials ------------------------------------------------------------------------


def test_explicit_settings_win_over_everything(shared_file: str) -> None:
    env = {**ENV, "AWS_SESSION_TOKEN": "env-token", "AWS_SHARED_CREDENTIALS_FILE": shared_file}
    assert resolve_credentials("EXPLICIT", "explicit-secret", env) == Credentials("EXPLICIT", "explicit-secret")
    assert resolve_credentials("EXPLICIT", "explicit-secret", env, "work") == Credentials("EXPLICIT", "explicit-secret")


def test_environment_wins_over_the_shared_file(shared_file: str) -> None:
    env = {**ENV, "AWS_SHARED_CREDENTIALS_FILE": shared_file, "AWS_PROFILE": "work"}
    assert resolve_credentials(None, None, env) == Credentials("ENV_KEY", "env-secret")
    assert resolve_credentials(None, None, {**env, "AWS_SESSION_TOKEN": "tok"}) == \
        Credentials("ENV_KEY", "env-secret", "tok")


def test_half_of_an_explicit_pair_is_not_used(shared_file: str) -> None:
    env = {**ENV, "AWS_SHARED_CREDENTIALS_FILE": shared_file}
    assert resolve_credentials("EXPLICIT", None, env) == Credentials("ENV_KEY", "env-secret")
    assert resolve_credentials(None, "explicit-secret", env) == Credentials("ENV_KEY", "env-secret")


def test_half_of_an_environment_pair_is_not_used(shared_file: str) -> None:
    env = {"AWS_ACCESS_KEY_ID": "ENV_KEY", "AWS_SHARED_CREDENTIALS_FILE": shared_file}
    assert resolve_credentials(None, None, env) == Credentials("FILE_DEFAULT_KEY", "file-default-secret")


def test_shared_file_default_profile(shared_file: str) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": shared_file}
    assert resolve_credentials(None, None, env) == Credentials("FILE_DEFAULT_KEY", "file-default-secret")


def test_shared_file_named_profile(shared_file: str) -> None:
    env = {"AWS_SHARED_CREDENTIALS_FILE": shared_file}
    expected = Credentials("FILE_WORK_KEY", "file-work-secret", "file-work-token")
    assert resolve_credentials(None, None, env, "work") == expected
    assert resolve_credentials(None, None, {**env, "AWS_PROFILE": "work"}) == expected
    assert resolve_credentials(None, None, {**env, "AWS_PROFILE": "work"}, "default") == \
        Credentials("FILE_DEFAULT_KEY", "file-default-secret")


def test_shared_file_in_the_home_directory(tmp_path: Path) -> None:
    aws = tmp_path / "home" / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(CREDENTIALS_FILE)
    assert resolve_credentials(None, None, {}, "work") == \
        Credentials("FILE_WORK_KEY", "file-work-secret", "file-work-token")


def test_nothing_anywhere_is_anonymous(shared_file: str, tmp_path: Path) -> None:
    assert resolve_credentials(None, None, {}) is None
    assert resolve_credentials("", "", {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}) is None
    assert resolve_credentials(None, None, {"AWS_SHARED_CREDENTIALS_FILE": shared_file}, "missing") is None
    assert resolve_credentials(None, None, {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "absent")}) is None


def test_an_unreadable_credentials_file_is_anonymous(tmp_path: Path) -> None:
    path = tmp_path / "broken"
    path.write_text("aws_access_key_id = no section header\n")
    assert resolve_credentials(None, None, {"AWS_SHARED_CREDENTIALS_FILE": str(path)}) is None


def test_a_profile_without_a_secret_is_not_credentials(tmp_path: Path) -> None:
    path = tmp_path / "partial"
    path.write_text("[default]\naws_access_key_id = ONLY_THE_KEY\n")
    assert resolve_credentials(None, None, {"AWS_SHARED_CREDENTIALS_FILE": str(path)}) is None


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
    signer = Signer(Credentials(ACCESS, SECRET, token), "eu-central-1")
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
    signed = {k.lower(): v for k, v in Signer(Credentials(ACCESS, "another-secret"), "us-east-1").sign(
        "GET", "/bucket/k", {"host": "origin.test"}).items()}
    expected = botocore_authorization(monkeypatch, "GET", "http://origin.test/bucket/k",
                                      {"host": "origin.test", "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},
                                      signed["x-amz-date"], "us-east-1")
    assert signed["authorization"].split("Signature=")[0] == expected.split("Signature=")[0]
    assert signed["authorization"] != expected


def test_signed_headers_keep_the_originals() -> None:
    headers = {"host": "origin.test", "range": "bytes=1-2"}
    signed = Signer(Credentials(ACCESS, SECRET), "us-east-1").sign("GET", "/b/k", headers)
    assert {k.lower(): v for k, v in signed.items()}.items() >= headers.items()
    assert headers == {"host": "origin.test", "range": "bytes=1-2"}  # the caller's dict is not changed
    date = {k.lower(): v for k, v in signed.items()}["x-amz-date"]
    assert f"Credential={ACCESS}/{date[:8]}/us-east-1/s3/aws4_request" in signed["Authorization"]
