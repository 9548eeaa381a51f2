"""Virtual-hosted-style addressing end to end: boto3 with addressing_style "virtual" and the endpoint
http://localhost:PORT (so it asks for http://<bucket>.localhost:PORT/<key>), through nginx (the shipped config)
to a worker with server.domains = ["localhost"] that verifies SigV4, over a directory and over an S3 origin.

<bucket>.localhost does not resolve on every machine: the test's own resolver sends any *.localhost to
127.0.0.1 (the connection is real; only the name lookup is answered here), and every request boto3 sent is
checked to have gone to its bucket's host."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from rig.cluster import Cluster
from rig.nginx import Nginx
from rig.origin import MotoOrigin
from rig.redis import RedisServer
from tests.conftest import backend_worker

SECRET = "virtual-host-secret"
CONFIG = f'[server]\ndomains = ["localhost"]\n\n[auth]\nmode = "sigv4"\nusers = {{ alice = "{SECRET}" }}\n'


@pytest.fixture(scope="module", params=["dir", "s3"])
def endpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx's port, in front of one worker serving virtual hosts of localhost."""
    workdir: Path = tmp_path_factory.mktemp(f"virtual-{request.param}")
    (workdir / "s3cache.toml").write_text(CONFIG)
    worker = backend_worker(request, workdir, "--config", str(workdir / "s3cache.toml")).start()
    nginx = Nginx([f"127.0.0.1:{worker.port}"])
    try:
        yield nginx.start().port
    finally:
        nginx.stop()
        worker.stop()


@pytest.fixture
def localhost_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve <anything>.localhost to 127.0.0.1 in this process (RFC 6761 reserves the name for loopback)."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def virtual_client(port: int, secret: str = SECRET) -> tuple[Any, list[str]]:
    client = boto3.client("s3", endpoint_url=f"http://localhost:{port}", aws_access_key_id="alice",
                          aws_secret_access_key=secret, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    return client, sent


@pytest.mark.usefixtures("localhost_names")
def test_boto3_virtual_hosted_round_trip(endpoint: int) -> None:
    s3, sent = virtual_client(endpoint)
    bucket = f"vh-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    small, large = b"virtually hosted\n", bytes(range(256)) * (24 << 10)  # 6 MiB: two parts
    s3.put_object(Bucket=bucket, Key="dir/small.txt", Body=small)
    assert s3.get_object(Bucket=bucket, Key="dir/small.txt")["Body"].read() == small
    assert s3.head_object(Bucket=bucket, Key="dir/small.txt")["ContentLength"] == len(small)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=upload_id, PartNumber=n,
                                                       Body=large[(n - 1) * (5 << 20):n * (5 << 20)])["ETag"]}
             for n in (1, 2)]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    digests = hashlib.md5(large[:5 << 20]).digest() + hashlib.md5(large[5 << 20:]).digest()
    assert done["ETag"] == f'"{hashlib.md5(digests).hexdigest()}-2"'
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == large
    assert s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=5242870-5242889")["Body"].read() == \
        large[5242870:5242890]
    listed = s3.list_objects_v2(Bucket=bucket)
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [("big.bin", len(large)), ("dir/small.txt",
                                                                                              len(small))]
    assert s3.list_objects_v2(Bucket=bucket, Delimiter="/")["CommonPrefixes"] == [{"Prefix": "dir/"}]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]  # the service, at localhost itself
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "big.bin"}]})
    s3.delete_object(Bucket=bucket, Key="dir/small.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    # every request went to the bucket's own host, but ListBuckets, which has no bucket
    hosts = {httpx.URL(url).host for url in sent}
    assert hosts == {f"{bucket}.localhost", "localhost"}
    assert [url for url in sent if httpx.URL(url).host == "localhost"] == [f"http://localhost:{endpoint}/"]


@pytest.mark.usefixtures("localhost_names")
def test_a_wrong_secret_is_refused_on_a_virtual_host(endpoint: int) -> None:
    s3, _ = virtual_client(endpoint)
    bucket = f"vh-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"signed")
    impostor, _ = virtual_client(endpoint, secret="not the secret")
    with pytest.raises(impostor.exceptions.ClientError) as exc:
        impostor.get_object(Bucket=bucket, Key="k")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # the Host names the bucket: the same path at another bucket's host is another object
    s3.create_bucket(Bucket=bucket + "-b")
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket + "-b", Key="k")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"signed"


def test_a_virtual_hosted_read_is_redirected_path_style_to_the_worker_holding_it(
        moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A cluster in redirect mode: a read asked of a worker that does not hold the object's first block is sent
    to the one that does, path style at its address, and lands there with every byte."""
    workdir = tmp_path_factory.mktemp("virtual-redirect")
    (workdir / "domains.toml").write_text('[server]\ndomains = ["localhost"]\n')
    cluster = Cluster("redirect", moto_origin, workdir, RedisServer(workdir),
                      extra_args=["--config", str(workdir / "domains.toml")])
    try:
        cluster.start()
        bucket = cluster.bucket("vr")
        data = bytes(range(256)) * 4096
        cluster.boto3().put_object(Bucket=bucket, Key="dir/obj", Body=data)
        redirected = []
        for worker in cluster.workers.values():
            with httpx.Client(follow_redirects=True, timeout=30) as http:
                r = http.get(f"{worker.url}/dir/obj", headers={"host": f"{bucket}.localhost:{worker.port}"})
            assert r.status_code == 200 and r.content == data
            redirected += [h.headers["location"] for h in r.history]
        assert redirected  # the block has one owner: the other workers sent the read on
        for location in redirected:
            url = httpx.URL(location)
            assert url.host == "127.0.0.1" and url.path == f"/{bucket}/dir/obj"
    finally:
        cluster.stop()
