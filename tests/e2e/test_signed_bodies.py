"""Verified signatures in every form a client sends, end to end through a real `sigv4` worker over an S3 origin:
signed aws-chunked bodies (chunk and trailer signatures), unsigned bodies with a checksum trailer, and SigV2
headers and presigned URLs from boto3. Every refusal is S3's error, and the object reads back unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from xml.etree import ElementTree

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker
from tests.chunked import SignedUpload
from tests.e2e.conftest import StartWorker

SECRET = "alice-secret"
OLD = b"the object before"


@pytest.fixture(scope="module")
def signed_worker(moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    workdir = tmp_path_factory.mktemp("signed-bodies")
    (workdir / "s3cache.toml").write_text(f'[auth]\nmode = "sigv4"\nusers = {{ alice = "{SECRET}" }}\n')
    worker = Worker(["--config", str(workdir / "s3cache.toml"), "--origin", moto_origin.url,
                     "--cache-dir", str(workdir / "cache")], workdir, env=ORIGIN_ENV, backend="s3").start()
    yield worker
    worker.stop()


def client(worker: Worker, secret: str = SECRET, signature_version: str = "s3v4"):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=worker.url, region_name="us-east-1", aws_access_key_id="alice",
                        aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      signature_version=signature_version))


def error_code(response: httpx.Response) -> str:
    root = ElementTree.fromstring(response.content)
    return root.findtext("Code") or ""


@pytest.fixture
def key(signed_worker: Worker) -> tuple[str, str]:
    s3 = client(signed_worker)
    bucket = f"signed-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=OLD)
    return bucket, "k"


def put(worker: Worker, bucket: str, key: str, upload: SignedUpload, tamper: str = "",
        swap: bool = False) -> httpx.Response:
    headers, body = upload.request(tamper, swap)
    return httpx.put(f"{worker.url}/{bucket}/{key}", headers=headers, content=body, timeout=30)


def upload_of(worker: Worker, bucket: str, key: str, **how: bool) -> SignedUpload:
    payload = b"".join(b"%06d signed chunked line\n" % i for i in range(9000))  # ~220 KiB: four chunks
    return SignedUpload(worker.url.removeprefix("http://"), f"/{bucket}/{key}", payload, "alice", SECRET, **how)


@pytest.mark.parametrize("trailer", [False, True])
def test_a_signed_chunked_upload_is_stored_byte_for_byte(signed_worker: Worker, key: tuple[str, str],
                                                         trailer: bool) -> None:
    upload = upload_of(signed_worker, *key, trailer=trailer)
    response = put(signed_worker, *key, upload)
    assert response.status_code == 200, response.text
    assert client(signed_worker).get_object(Bucket=key[0], Key=key[1])["Body"].read() == upload.payload


@pytest.mark.parametrize(("trailer", "tamper", "swap"), [
    (False, "signature", False), (False, "data", False), (False, "", True),
    (True, "signature", False), (True, "trailer", False), (True, "trailer-signature", False), (True, "", True)])
def test_a_tampered_chunked_upload_is_refused_and_changes_nothing(signed_worker: Worker, key: tuple[str, str],
                                                                  trailer: bool, tamper: str, swap: bool) -> None:
    response = put(signed_worker, *key, upload_of(signed_worker, *key, trailer=trailer), tamper, swap)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch"), response.text
    assert client(signed_worker).get_object(Bucket=key[0], Key=key[1])["Body"].read() == OLD
    assert httpx.get(signed_worker.url + "/_s3cache/healthz").status_code == 200


def test_an_unsigned_body_with_a_checksum_trailer(signed_worker: Worker, key: tuple[str, str]) -> None:
    upload = upload_of(signed_worker, *key, signed=False)
    bad = put(signed_worker, *key, upload, tamper="trailer")
    assert (bad.status_code, error_code(bad)) == (400, "BadDigest"), bad.text
    assert client(signed_worker).get_object(Bucket=key[0], Key=key[1])["Body"].read() == OLD
    good = put(signed_worker, *key, upload)
    assert good.status_code == 200, good.text
    assert client(signed_worker).get_object(Bucket=key[0], Key=key[1])["Body"].read() == upload.payload


def test_sigv2_from_boto3_header_and_presigned(signed_worker: Worker, key: tuple[str, str]) -> None:
    bucket, name = key
    v2 = client(signed_worker, signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2", Body=b"signed with sigv2", Metadata={"color": "blue"})
    got = v2.get_object(Bucket=bucket, Key="v2")
    assert (got["Body"].read(), got["Metadata"]) == (b"signed with sigv2", {"color": "blue"})
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["k", "v2"]
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": name}, ExpiresIn=60)
    assert "AWSAccessKeyId=alice" in url
    assert httpx.get(url).content == OLD
    wrong = httpx.get(url.replace("Expires=", "Expires=1"))  # a later expiry than signed
    assert (wrong.status_code, error_code(wrong)) == (403, "SignatureDoesNotMatch")

    with pytest.raises(ClientError) as caught:
        client(signed_worker, secret="wrong", signature_version="s3").put_object(Bucket=bucket, Key=name, Body=b"x")
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert v2.get_object(Bucket=bucket, Key=name)["Body"].read() == OLD
    v2.delete_object(Bucket=bucket, Key="v2")
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["k"]


def test_sigv2_switched_off(start_worker: StartWorker, tmp_path_factory: pytest.TempPathFactory,
                            moto_origin: MotoOrigin) -> None:
    config = tmp_path_factory.mktemp("nov2") / "s3cache.toml"
    config.write_text(f'[auth]\nmode = "sigv4"\nsigv2 = false\nusers = {{ alice = "{SECRET}" }}\n')
    worker = start_worker(moto_origin.url, "--config", str(config))
    with pytest.raises(ClientError) as caught:
        client(worker, signature_version="s3").list_buckets()
    error = caught.value.response["Error"]
    assert (error["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("InvalidRequest", 400)
    assert "Please use AWS4-HMAC-SHA256" in error["Message"]
    assert client(worker).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
