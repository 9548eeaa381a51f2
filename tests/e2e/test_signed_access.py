"""Verified SigV4 as deployed: boto3, the AWS CLI, s3fs and s3torchconnector against `sigv4` workers over a moto
origin, behind nginx (the shipped config) — one worker, and a three-worker cluster sharing a Redis. The right keys work for
every kind of operation (multipart, presigned GET and PUT, SigV2, bodies with chunk signatures); a wrong
secret, a tampered signed header, a replay outside the skew window, an expired presigned URL, a tampered chunk
signature and a tampered trailer each get S3's error and change nothing."""

from __future__ import annotations

import datetime
import hashlib
import io
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import boto3
import boto3.s3.transfer
import httpx
import pytest
import s3fs
from awscrt import auth
from awscrt import http as crt_http
from botocore.config import Config
from botocore.exceptions import ClientError

from rig.cluster import Cluster
from rig.nginx import Nginx
from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer
from tests.chunked import SignedUpload

SECRET = "alice-acceptance-secret"
OLD = b"the object as it was\n" * 100
AWS = str(Path(sys.executable).parent / "aws")


def _config(directory: Path) -> Path:
    path = directory / "auth.toml"
    path.write_text(f'[auth]\nmode = "sigv4"\nmax_skew_s = 300\nusers = {{ alice = "{SECRET}" }}\n')
    return path


@dataclass
class Endpoint:
    url: str

    def client(self, secret: str = SECRET, signature_version: str = "s3v4"):  # type: ignore[no-untyped-def]
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="alice",
                            aws_secret_access_key=secret,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                          signature_version=signature_version))


@pytest.fixture(scope="module", params=["nginx", "cluster"])
def endpoint(request: pytest.FixtureRequest, moto_origin: MotoOrigin,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    workdir = tmp_path_factory.mktemp(f"signed-{request.param}")
    config = _config(workdir)
    if request.param == "nginx":
        worker = Worker(["--config", str(config), "--origin", moto_origin.url, "--cache-dir", str(workdir / "c"),
                         "--data", str(workdir / "d")], workdir, env=dict(ORIGIN_ENV), backend="s3").start()
        nginx = Nginx([f"127.0.0.1:{worker.port}"]).start()
        try:
            yield Endpoint(nginx.url)
        finally:
            nginx.stop()
            worker.stop()
        return
    cluster = Cluster("proxy", moto_origin, workdir, RedisServer(workdir), extra_args=["--config", str(config)])
    try:
        yield Endpoint(cluster.start().url)
    finally:
        cluster.stop()


@pytest.fixture
def bucket(endpoint: Endpoint) -> str:
    name = f"acc-{uuid.uuid4().hex[:10]}"
    s3 = endpoint.client()
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=OLD)
    return name


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, ElementTree.fromstring(response.content).findtext("Code") or ""


def test_right_keys_work_for_every_operation(endpoint: Endpoint, bucket: str) -> None:
    s3 = endpoint.client()
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == OLD
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(OLD)
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    s3.put_object_tagging(Bucket=bucket, Key="copy", Tagging={"TagSet": [{"Key": "t", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="copy")["TagSet"] == [{"Key": "t", "Value": "v"}]
    big = hashlib.sha256(b"multipart").digest() * (400 << 10)  # 12.5 MiB: three parts
    s3.upload_fileobj(io.BytesIO(big), bucket, "big",
                      Config=boto3.s3.transfer.TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    assert hashlib.md5(s3.get_object(Bucket=bucket, Key="big")["Body"].read()).digest() == hashlib.md5(big).digest()
    assert s3.get_object(Bucket=bucket, Key="big", Range="bytes=5-9")["Body"].read() == big[5:10]

    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60)
    assert httpx.put(put_url, content=b"put by url").status_code == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=60)
    assert httpx.get(get_url).content == b"put by url"

    v2 = endpoint.client(signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2", Body=b"sigv2")
    assert v2.get_object(Bucket=bucket, Key="v2")["Body"].read() == b"sigv2"

    for trailer in (False, True):
        upload = SignedUpload(endpoint.url.removeprefix("http://"), f"/{bucket}/chunked-{trailer}",
                              b"chunk signed\n" * 20000, "alice", SECRET, trailer=trailer)
        headers, body = upload.request()
        response = httpx.put(f"{endpoint.url}/{bucket}/chunked-{trailer}", headers=headers, content=body, timeout=30)
        assert response.status_code == 200, response.text
        assert s3.get_object(Bucket=bucket, Key=f"chunked-{trailer}")["Body"].read() == upload.payload

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["big", "chunked-False", "chunked-True", "copy", "k", "presigned", "v2"]
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys if key != "k"]})
    assert len(deleted["Deleted"]) == 6
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_the_aws_cli_and_s3fs_with_the_right_keys(endpoint: Endpoint, bucket: str, tmp_path: Path) -> None:
    env = {"AWS_ACCESS_KEY_ID": "alice", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "PATH": "/usr/bin:/bin"}
    source = tmp_path / "up.bin"
    source.write_bytes(hashlib.sha256(b"cli").digest() * (300 << 10))  # 9.4 MiB: the CLI uploads it in parts

    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AWS, "--endpoint-url", endpoint.url, *args], env=env, capture_output=True, text=True,
                              timeout=120)

    done = aws("s3", "cp", str(source), f"s3://{bucket}/cli.bin")
    assert done.returncode == 0, done.stderr
    done = aws("s3", "cp", f"s3://{bucket}/cli.bin", str(tmp_path / "down.bin"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "down.bin").read_bytes() == source.read_bytes()
    assert "cli.bin" in aws("s3", "ls", f"s3://{bucket}/").stdout
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    refused = aws("s3", "cp", str(source), f"s3://{bucket}/k")
    assert refused.returncode != 0 and "SignatureDoesNotMatch" in refused.stderr

    fs = s3fs.S3FileSystem(key="alice", secret=SECRET, client_kwargs={"endpoint_url": endpoint.url,
                                                                      "region_name": "us-east-1"})
    with fs.open(f"{bucket}/fs.txt", "wb") as out:
        out.write(b"written by s3fs")
    assert fs.cat(f"{bucket}/fs.txt") == b"written by s3fs"
    assert fs.cat(f"{bucket}/k") == OLD
    wrong = s3fs.S3FileSystem(key="alice", secret="wrong", skip_instance_cache=True,
                              client_kwargs={"endpoint_url": endpoint.url, "region_name": "us-east-1"})
    with pytest.raises(PermissionError):
        wrong.cat(f"{bucket}/k")
    assert endpoint.client().get_object(Bucket=bucket, Key="k")["Body"].read() == OLD


def signed_put(url: str, path: str, body: bytes, headers: dict[str, str], when: datetime.datetime,
               secret: str = SECRET) -> dict[str, str]:
    """A PUT's headers signed by awscrt at the time given (its payload hash signed)."""
    host = url.removeprefix("http://")
    kept = [("host", host), *headers.items()]
    request = crt_http.HttpRequest("PUT", path, headers=crt_http.HttpHeaders(kept))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=auth.AwsCredentialsProvider.new_static("alice", secret), region="us-east-1",
        service="s3", date=when, use_double_uri_encode=False, should_normalize_uri_path=False,
        signed_body_value=hashlib.sha256(body).hexdigest(),
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256)
    auth.aws_sign_request(request, config).result()
    return dict(request.headers)


def test_every_bad_signature_gets_s3s_error_and_changes_nothing(endpoint: Endpoint, bucket: str) -> None:
    s3, path, now = endpoint.client(), f"/{bucket}/k", datetime.datetime.now(datetime.UTC)
    url = endpoint.url + path

    with pytest.raises(ClientError) as caught:
        endpoint.client(secret="not-her-secret").put_object(Bucket=bucket, Key="k", Body=b"wrong secret")
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    headers = signed_put(endpoint.url, path, b"x", {"x-amz-meta-owner": "alice"}, now)
    tampered = httpx.put(url, headers={**headers, "x-amz-meta-owner": "mallory"}, content=b"x")
    assert error_of(tampered) == (403, "SignatureDoesNotMatch")

    stale = now - datetime.timedelta(seconds=400)  # max_skew_s is 300 here
    replay = httpx.put(url, headers=signed_put(endpoint.url, path, b"old", {}, stale), content=b"old")
    assert error_of(replay) == (403, "RequestTimeTooSkewed")

    presigned = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    expired = httpx.put(presigned, content=b"too late")
    assert error_of(expired) == (403, "AccessDenied")
    assert ElementTree.fromstring(expired.content).findtext("Message") == "Request has expired"

    for trailer, tamper in ((False, "signature"), (True, "signature"), (True, "trailer")):
        upload = SignedUpload(endpoint.url.removeprefix("http://"), path, b"tampered\n" * 20000, "alice", SECRET,
                              trailer=trailer)
        headers, body = upload.request(tamper)
        answer = httpx.put(url, headers=headers, content=body, timeout=30)
        assert error_of(answer) == (403, "SignatureDoesNotMatch"), (trailer, tamper)

    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == OLD
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_s3torchconnector_with_the_right_keys(endpoint: Endpoint, bucket: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRT client signs every request itself (SigV4, credentials from the environment): its listing, ranged
    reads and multipart checkpoint upload are verified like any other; a wrong secret is refused."""
    import warnings

    with warnings.catch_warnings():  # the CPU wheel works without NumPy, and says so on import
        warnings.filterwarnings("ignore", "Failed to initialize NumPy")
        import s3torchconnector as s3tc
    samples = {f"train/{i:03d}.bin": hashlib.sha256(b"%d" % i).digest() * (1 + 97 * i) for i in range(12)}
    s3 = endpoint.client()
    for key, data in samples.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    def crt_env(secret: str) -> None:
        for name, value in {"AWS_ACCESS_KEY_ID": "alice", "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
                            "AWS_CONFIG_FILE": str(tmp_path / "none"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)

    config = s3tc.S3ClientConfig(force_path_style=True, part_size=5 << 20)
    crt_env(SECRET)
    ds = s3tc.S3MapDataset.from_prefix(f"s3://{bucket}/train/", region="us-east-1", endpoint=endpoint.url,
                                       s3client_config=config, transform=lambda r: (r.key, r.read()),
                                       reader_constructor=s3tc.S3ReaderConstructor.range_based())
    assert dict(ds[i] for i in range(len(ds))) == samples
    checkpoint = s3tc.S3Checkpoint(region="us-east-1", endpoint=endpoint.url, s3client_config=config)
    state = hashlib.sha256(b"state").digest() * (400 << 10)  # 12.5 MiB: three parts of 5 MiB
    with checkpoint.writer(f"s3://{bucket}/ckpt.bin") as writer:
        writer.write(state)
    with checkpoint.reader(f"s3://{bucket}/ckpt.bin") as reader:
        assert reader.read() == state
    assert s3.get_object(Bucket=bucket, Key="ckpt.bin")["Body"].read() == state

    crt_env("wrong")
    refused = s3tc.S3Checkpoint(region="us-east-1", endpoint=endpoint.url, s3client_config=config)
    with pytest.raises(s3tc.S3Exception) as raised, refused.reader(f"s3://{bucket}/k") as reader:
        reader.read()
    # the CRT names the status and carries S3's message: SignatureDoesNotMatch's
    assert "Forbidden: The request signature we calculated does not match" in str(raised.value), str(raised.value)
    with pytest.raises(s3tc.S3Exception), refused.writer(f"s3://{bucket}/k") as writer:
        writer.write(b"must not land")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == OLD
