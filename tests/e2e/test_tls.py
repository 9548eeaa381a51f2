"""The HTTPS listener end to end: a test CA and certificates made here, boto3 over HTTPS (its checksum-trailer
uploads verified in sigv4 mode), the HTTPS-only switch, and a certificate swapped and reloaded on SIGHUP while a
download is in flight."""

from __future__ import annotations

import datetime
import hashlib
import io
import ipaddress
import signal
import socket
import ssl
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
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker, free_port
from rig.redis import RedisServer

SECRET = "alice-secret"


@dataclass
class Pki:
    ca_file: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    def issue(self, directory: Path, name: str) -> tuple[Path, Path, bytes]:
        """A server certificate for 127.0.0.1 signed by the CA: (cert file, key file, its DER)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(self.ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                            x509.DNSName("localhost")]), critical=False)
                .sign(self.ca_key, hashes.SHA256()))
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3cache test CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(key, hashes.SHA256()))
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(directory / "ca.pem", key, ca)


@dataclass
class TlsWorker:
    worker: Worker
    https_url: str
    cert_file: Path
    key_file: Path


def start_tls(tmp_path_factory: pytest.TempPathFactory, pki: Pki, name: str, extra: str = "") -> TlsWorker:
    workdir = tmp_path_factory.mktemp(name)
    cert_file, key_file, _ = pki.issue(workdir, "server")
    port = free_port()
    (workdir / "s3cache.toml").write_text(
        f'[server]\ntls_port = {port}\ntls_cert_file = "{cert_file}"\ntls_key_file = "{key_file}"\n{extra}'
        f'[auth]\nmode = "sigv4"\nusers = {{ alice = "{SECRET}" }}\n')
    worker = Worker(["--config", str(workdir / "s3cache.toml"), "--data", str(workdir / "data")], workdir).start()
    return TlsWorker(worker, f"https://127.0.0.1:{port}", cert_file, key_file)


@pytest.fixture(scope="module")
def tls_worker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsWorker]:
    started = start_tls(tmp_path_factory, pki, "tls")
    yield started
    started.worker.stop()


def s3_client(url: str, verify: str | bool):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="alice",
                        aws_secret_access_key=SECRET, verify=verify,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def served_certificate(url: str, ca_file: Path) -> bytes:
    """The DER certificate a new connection to url is shown (checked against the CA)."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_boto3_over_https_with_the_test_ca(tls_worker: TlsWorker, pki: Pki) -> None:
    s3 = s3_client(tls_worker.https_url, str(pki.ca_file))
    bucket = f"tls-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    body = b"over https\n" * 50000
    sent: list[bytes] = []
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **_: sent.append(request.headers.get("x-amz-content-sha256", b"")))
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    assert sent == [b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"]  # over https: unsigned chunks, a checksum trailer
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    s3.upload_fileobj(io.BytesIO(body * 3), bucket, "big",
                      Config=boto3.s3.transfer.TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    assert hashlib.md5(s3.get_object(Bucket=bucket, Key="big")["Body"].read()).digest() == \
        hashlib.md5(body * 3).digest()
    # the same worker still serves plain HTTP beside it, and a client not trusting the CA is refused the handshake
    assert s3_client(tls_worker.worker.url, False).get_object(Bucket=bucket, Key="k")["Body"].read() == body
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_worker.https_url + "/_s3cache/healthz")


def test_https_only_refuses_plain_http(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> None:
    started = start_tls(tmp_path_factory, pki, "https-only", "https_only = true\n")
    try:
        port = started.https_url.rsplit(":", 1)[1]
        plain = httpx.get(started.worker.url + "/")
        assert plain.status_code == 403
        root = ElementTree.fromstring(plain.content)
        assert (root.findtext("Code"), root.findtext("Message")) == \
            ("AccessDenied", f"This endpoint is HTTPS only: use https on port {port}")
        assert httpx.put(started.worker.url + "/b", content=b"").status_code == 403
        assert httpx.get(started.worker.url + "/_s3cache/healthz").status_code == 200  # probes still answer
        s3 = s3_client(started.https_url, str(pki.ca_file))
        s3.create_bucket(Bucket="secure")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["secure"]
    finally:
        started.worker.stop()


def test_a_swapped_certificate_is_served_after_sighup_without_dropping_a_download(
        tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> None:
    started = start_tls(tmp_path_factory, pki, "tls-reload")
    try:
        s3 = s3_client(started.https_url, str(pki.ca_file))
        s3.create_bucket(Bucket="reload")
        body = hashlib.sha256(b"seed").digest() * (2 << 20)  # 64 MiB
        s3.upload_fileobj(io.BytesIO(body), "reload", "big")
        before = served_certificate(started.https_url, pki.ca_file)
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "reload", "Key": "big"}, ExpiresIn=300)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca_file)), timeout=30) as client, \
                client.stream("GET", url) as download:
            assert download.status_code == 200
            digest, stream = hashlib.md5(), download.iter_bytes()
            digest.update(next(stream))  # the download has begun; the rest waits on this client

            new_cert, new_key, new_der = pki.issue(started.cert_file.parent, "swapped")
            started.cert_file.write_bytes(new_cert.read_bytes())
            started.key_file.write_bytes(new_key.read_bytes())
            assert started.worker.proc is not None
            started.worker.proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if served_certificate(started.https_url, pki.ca_file) == new_der:
                    break
                time.sleep(0.1)
            assert served_certificate(started.https_url, pki.ca_file) == new_der != before

            for piece in stream:
                digest.update(piece)
        assert digest.digest() == hashlib.md5(body).digest()
        assert "TLS certificate reloaded" in started.worker.log()

        started.key_file.write_text("not a key")  # a broken pair is refused: the swapped one keeps serving
        started.worker.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "TLS certificate not reloaded" in started.worker.log():
                break
            time.sleep(0.1)
        assert served_certificate(started.https_url, pki.ca_file) == new_der
        assert started.worker.proc.poll() is None
    finally:
        started.worker.stop()


@pytest.mark.parametrize("data_path", ["proxy", "redirect"])
def test_a_cluster_serving_https_reads_its_peers_over_https(tmp_path_factory: pytest.TempPathFactory, pki: Pki,
                                                            moto_origin: MotoOrigin, data_path: str) -> None:
    """Two HTTPS-only workers (their plain port refuses peer requests too): blocks held by the other worker come
    over the peer hop, which can then only be https, checked against cluster.peer_ca_file; in redirect mode a
    client following the 307 is sent to the holder's https URL."""
    workdir = tmp_path_factory.mktemp("tls-cluster")
    redis = RedisServer(workdir).start()
    workers: dict[str, TlsWorker] = {}
    try:
        for wid in ("a", "b"):
            home = workdir / wid
            home.mkdir()
            cert_file, key_file, _ = pki.issue(home, "server")
            port = free_port()
            (home / "s3cache.toml").write_text(
                f'[server]\ntls_port = {port}\ntls_cert_file = "{cert_file}"\ntls_key_file = "{key_file}"\n'
                f'https_only = true\n[cluster]\npeer_ca_file = "{pki.ca_file}"\n')
            worker = Worker(["--config", str(home / "s3cache.toml"), "--origin", moto_origin.url, "--redis",
                             redis.url, "--worker-id", wid, "--data-path", data_path, "--cache-dir",
                             str(home / "blocks"), "--block-size", "1M", "--data", str(home / "data")], home,
                            env={**ORIGIN_ENV, "S3CACHE_CLUSTER_SECRET": "tls-cluster-secret"}, backend="s3")
            workers[wid] = TlsWorker(worker.start(), f"https://127.0.0.1:{port}", cert_file, key_file)
        deadline = time.monotonic() + 20
        while not all("live workers: a, b" in w.worker.log() for w in workers.values()):
            assert time.monotonic() < deadline, "the workers did not see each other"
            time.sleep(0.1)
        clients = {wid: s3_client(w.https_url, str(pki.ca_file)) for wid, w in workers.items()}
        bucket = f"tls-cluster-{uuid.uuid4().hex[:8]}"
        clients["a"].create_bucket(Bucket=bucket)
        body = hashlib.sha256(b"blocks").digest() * (256 << 10)  # 8 MiB: eight blocks, spread over both workers
        clients["a"].put_object(Bucket=bucket, Key="k", Body=body)
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        if data_path == "redirect":  # boto3 does not follow 307s: httpx does, to the holder's https URL
            hops = []
            with httpx.Client(verify=context, follow_redirects=True, timeout=30) as http:
                for w in (*workers.values(), *workers.values()):
                    got = http.get(f"{w.https_url}/{bucket}/k")
                    assert got.status_code == 200 and got.content == body
                    hops += [hop.headers["location"] for hop in got.history]
            https_urls = {w.https_url for w in workers.values()}
            assert hops and all(any(hop.startswith(url + "/") for url in https_urls) for hop in hops), hops
            return
        for wid in ("a", "b", "a", "b"):
            assert hashlib.md5(clients[wid].get_object(Bucket=bucket, Key="k")["Body"].read()).digest() == \
                hashlib.md5(body).digest()
        peer_reads = sum(float(line.split()[-1]) for w in workers.values()
                         for line in httpx.get(w.https_url + "/_s3cache/metrics", verify=context).text.splitlines()
                         if line.startswith("s3cache_peer_block_reads_total "))
        assert peer_reads > 0, "no block came over the peer hop: the test proved nothing"
        for w in workers.values():
            assert "https://127.0.0.1:" in httpx.get(w.https_url + "/_s3cache/status", verify=context).text
    finally:
        for w in workers.values():
            w.worker.stop()
        redis.stop()
