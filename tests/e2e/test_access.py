"""Who may call, end to end through real worker processes: presigned URLs past their time (SIMPLE and verified
SigV4), and OIDC tokens (a JWT as a Bearer token or as boto3's session token) verified against a JWKS.

Authentication happens before any storage is touched, so every worker here serves a local directory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

import boto3
import httpx
import pytest
from botocore.config import Config

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
    if mode == "simple":  # a verified-SigV4 worker refuses SigV2 whatever its time
        assert httpx.get(get_v2).content == b"before"
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
