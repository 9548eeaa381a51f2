"""Secrets never appear: not in a log, an error, a response, /metrics, ``s3cache status``, nor a repr of the settings.

A worker runs in a cluster (a throwaway Redis, moto as the origin) with known secrets: the cluster secret and the
previous one (a rotation under way), the origin's secret access key and an [auth.users] secret, at log level
debug. It is exercised: signed and badly signed requests, a cold read whose blocks a peer (a worker holding
another secret) refuses, peer requests of its own endpoint with no or a wrong signature, /_s3cache/metrics,
/_s3cache/status, ``s3cache status`` (--json too), and ``s3cache serve`` stopped by a ConfigError naming a key.
Then every log file, every response body, every command's output and the repr of the loaded Settings are searched
for each secret. A ``--processes 2`` worker (not in a cluster: the settings reach its children as JSON) is also
checked (a gateway, capacity 0: a caching worker runs one process): its children got the secrets (SigV4 verifies,
the origin answers) and logged none.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cache.cluster.peers import PEER_PATH, sign_request
from conf.settings import load_settings
from rig.origin import MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer

pytestmark = pytest.mark.slow

MiB = 1 << 20
TAG = uuid.uuid4().hex[:8]
CLUSTER_SECRET = f"cluster-{TAG}-{secrets.token_hex(12)}"
PREVIOUS_SECRET = f"previous-{TAG}-{secrets.token_hex(12)}"
OTHER_CLUSTER_SECRET = f"other-{TAG}-{secrets.token_hex(12)}"
ORIGIN_SECRET = f"origin-{TAG}-{secrets.token_hex(12)}"
USER, USER_SECRET = "alice", f"alice-{TAG}-{secrets.token_hex(12)}"
SECRETS = {"cluster secret": CLUSTER_SECRET, "previous cluster secret": PREVIOUS_SECRET,
           "the other worker's cluster secret": OTHER_CLUSTER_SECRET, "origin secret key": ORIGIN_SECRET,
           "auth user secret": USER_SECRET}


class Seen:
    """Everything the worker showed: response bodies and headers, command outputs."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, what: str, text: str | bytes) -> None:
        self.texts.append((what, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def response(self, what: str, r: httpx.Response) -> httpx.Response:
        self.add(f"{what}: body", r.content)
        self.add(f"{what}: headers", "\n".join(f"{k}: {v}" for k, v in r.headers.items()))
        return r


def s3(endpoint: str, user: str = USER, secret: str = USER_SECRET) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=user, aws_secret_access_key=secret,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def write_config(workdir: Path) -> Path:
    config = workdir / "s3cache.toml"
    config.write_text(f'[auth]\nmode = "sigv4"\n\n[auth.users]\n{USER} = "{USER_SECRET}"\n')
    return config


def secret_env(workdir: Path) -> dict[str, str]:
    previous = workdir / "previous-secret"
    previous.write_text(PREVIOUS_SECRET + "\n")
    return {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",  # the origin's key comes from the settings only
            "S3CACHE_ORIGIN_ACCESS_KEY_ID": "origin-key", "S3CACHE_ORIGIN_SECRET_ACCESS_KEY": ORIGIN_SECRET,
            "S3CACHE_CLUSTER_SECRET": CLUSTER_SECRET, "S3CACHE_CLUSTER_PREVIOUS_SECRET_FILE": str(previous),
            "S3CACHE_CLUSTER_HEARTBEAT_TTL_S": "1.5"}


def worker_args(workdir: Path, moto: MotoOrigin, *extra: str) -> list[str]:
    return ["--config", str(write_config(workdir)), "--data", str(workdir / "data"), "--origin", moto.url,
            "--cache-dir", str(workdir / "blocks"), "--block-size", "1M", "--cache-capacity", "64M",
            "--log-level", "debug", *extra]


@pytest.fixture(scope="module")
def bucket(moto_origin: MotoOrigin) -> str:
    name = f"secrets-{TAG}"
    origin = s3(moto_origin.url, "origin-key", "origin-secret")
    origin.create_bucket(Bucket=name)
    origin.put_object(Bucket=name, Key="cold.bin", Body=os.urandom(8 * MiB))
    return name


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("secrets-redis")).start()
    yield server
    server.stop()


def wait_membership(worker: Worker, want: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = re.findall(r"live workers: (.*)$", worker.log(), re.MULTILINE)
        if lines and lines[-1] == want:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{worker.url} did not see {want}")


def cli(seen: Seen, what: str, *args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "proxy.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})}, cwd=cwd)
    seen.add(f"{what}: stdout", proc.stdout)
    seen.add(f"{what}: stderr", proc.stderr)
    return proc


def exercise(seen: Seen, worker: Worker, bucket: str) -> None:
    client = s3(worker.url)
    client.put_object(Bucket=bucket, Key="small.txt", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == b"hello"
    # a cold read: blocks the other worker owns are asked of it, which refuses (another secret): from the origin
    assert len(client.get_object(Bucket=bucket, Key="cold.bin")["Body"].read()) == 8 * MiB
    for what, bad in (("wrong secret", s3(worker.url, USER, "not-the-secret")),
                      ("unknown user", s3(worker.url, "mallory", USER_SECRET))):
        with pytest.raises(ClientError) as caught:
            bad.get_object(Bucket=bucket, Key="small.txt")
        seen.add(f"{what}: error", repr(caught.value.response))
    seen.response("unsigned", httpx.get(f"{worker.url}/{bucket}/small.txt", timeout=30))
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small.txt"})
    seen.response("presigned, tampered", httpx.get(presigned.replace("small.txt", "other.txt"), timeout=30))
    peer = f"{worker.url}{PEER_PATH}?{'b=' + bucket}&k=small.txt&e=x&s=5&i=0&lo=0&hi=5&bs=0"
    for what, headers in (("peer, unsigned", {}), ("peer, raw secret", {"x-s3cache-secret": CLUSTER_SECRET}),
                          ("peer, wrong secret", sign_request("wrong", "GET", PEER_PATH, {"b": bucket}, 30))):
        assert seen.response(what, httpx.get(peer, headers=headers, timeout=30)).status_code == 403
    for path in ("/_s3cache/metrics", "/_s3cache/status", "/_s3cache/healthz"):
        assert seen.response(path, httpx.get(f"{worker.url}{path}", timeout=30)).status_code == 200
    for flags in ([], ["--json"]):
        assert cli(seen, f"status {flags}", "status", "--endpoint", worker.url, *flags).returncode == 0


def assert_nowhere(seen: Seen, logs: list[Path]) -> None:
    read = [(str(path), path.read_text(errors="replace")) for path in logs]
    assert read and all(text for _, text in read), "no log to search: the test would prove nothing"
    places = [*seen.texts, *read]
    for name, secret in SECRETS.items():
        for where, text in places:
            assert secret not in text, f"the {name} appears in {where}"


def test_no_secret_in_logs_errors_responses_metrics_status_or_repr(
        moto_origin: MotoOrigin, redis_server: RedisServer, bucket: str, tmp_path: Path) -> None:
    seen = Seen()
    env = secret_env(tmp_path)
    namespace = f"sec-{TAG}"
    main_dir, other_dir = tmp_path / "main", tmp_path / "other"
    main_dir.mkdir()
    other_dir.mkdir()
    cluster = ["--redis", redis_server.url]
    worker = Worker(worker_args(main_dir, moto_origin, *cluster, "--worker-id", "main"), main_dir,
                    env={**env, "S3CACHE_CLUSTER_NAMESPACE": namespace}, backend="s3")
    other_env = {k: v for k, v in env.items() if k != "S3CACHE_CLUSTER_PREVIOUS_SECRET_FILE"}
    other = Worker(worker_args(other_dir, moto_origin, *cluster, "--worker-id", "other"), other_dir,
                   env={**other_env, "S3CACHE_CLUSTER_NAMESPACE": namespace,
                        "S3CACHE_CLUSTER_SECRET": OTHER_CLUSTER_SECRET}, backend="s3")
    try:
        worker.start()
        other.start()
        wait_membership(worker, "main, other")
        exercise(seen, worker, bucket)
        assert "peer request refused" in other.log(), "the failing peer call was never made"
        assert re.search(r"peer \S+ skipped", worker.log()), "the failing peer call was never made"
    finally:
        worker.stop()
        other.stop()

    # ConfigErrors naming a key, with every secret in the environment
    bad = cli(seen, "serve, a bad setting", "serve", *worker_args(main_dir, moto_origin, *cluster),
              env={**env, "S3CACHE_CLUSTER_PEER_REQUEST_TTL_S": "-1"}, cwd=main_dir)
    assert bad.returncode == 2 and "cluster.peer_request_ttl_s" in bad.stderr, bad.stderr
    both = cli(seen, "serve, secret and file", "serve", *worker_args(main_dir, moto_origin, *cluster),
               env={**env, "S3CACHE_CLUSTER_PREVIOUS_SECRET": PREVIOUS_SECRET}, cwd=main_dir)
    assert both.returncode == 2 and "cluster.previous_secret_file" in both.stderr, both.stderr

    settings = load_settings(main_dir / "s3cache.toml", env)
    assert settings.cluster.secret is not None and settings.cluster.secret.get_secret_value() == CLUSTER_SECRET
    assert settings.cluster.previous_secret is not None
    assert settings.cluster.previous_secret.get_secret_value() == PREVIOUS_SECRET
    assert settings.origin.secret_access_key is not None
    assert settings.origin.secret_access_key.get_secret_value() == ORIGIN_SECRET
    assert settings.auth.users == {USER: USER_SECRET}
    for what, text in (("repr(Settings)", repr(settings)), ("str(Settings)", str(settings)),
                       ("Settings JSON", settings.model_dump_json()), ("Settings dump", str(settings.model_dump()))):
        seen.add(what, text)
    assert_nowhere(seen, sorted(tmp_path.rglob("*.log")))


def test_children_of_processes_n_get_the_secrets_and_log_none(
        moto_origin: MotoOrigin, bucket: str, tmp_path: Path) -> None:
    seen = Seen()
    env = {k: v for k, v in secret_env(tmp_path).items() if not k.startswith("S3CACHE_CLUSTER_")}
    args = worker_args(tmp_path, moto_origin, "--processes", "2", "--cache-capacity", "0")
    worker = Worker(args, tmp_path, env=env, backend="s3")
    try:
        worker.start()
        client = s3(worker.url)
        for n in range(8):  # over both children: SigV4 verified with the user's secret, the origin signed with its
            client.put_object(Bucket=bucket, Key=f"children/{n}", Body=b"x" * n)
            assert client.get_object(Bucket=bucket, Key=f"children/{n}")["Body"].read() == b"x" * n
        with pytest.raises(ClientError) as caught:
            s3(worker.url, USER, "not-the-secret").get_object(Bucket=bucket, Key="children/1")
        assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        seen.response("metrics", httpx.get(f"{worker.url}/_s3cache/metrics", timeout=30))
    finally:
        worker.stop()
    assert_nowhere(seen, sorted(tmp_path.rglob("*.log")))
