"""The cluster secret can stay off the command line: from a file (``--cluster-secret-file``, ``cluster.secret_file``)
or the environment (``S3CACHE_CLUSTER_SECRET``); given as ``--cluster-secret`` it still works, with a warning.

Each worker is a real ``s3cache serve`` in a cluster (a throwaway Redis); that it holds the secret is shown by its
peer endpoint, which takes a request carrying the secret and refuses one carrying another.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cache.cluster.peers import PEER_PATH, sign_request
from rig.processes import Worker
from rig.redis import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def secret() -> str:
    return secrets.token_hex(16)


def _start(tmp_path: Path, redis_server: RedisServer, *args: str, env: dict[str, str] | None = None) -> Worker:
    return Worker(["--data", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "blocks"), "--redis",
                   redis_server.url, "--worker-id", f"w-{secrets.token_hex(3)}", *args], tmp_path,
                  env=env or {}).start()


def _holds(worker: Worker, secret: str) -> None:
    """The worker's peer endpoint admits a request signed with the secret (the malformed request then gets past
    it) and no other."""
    url = f"{worker.url}{PEER_PATH}?bs=0"
    admitted = httpx.get(url, headers=sign_request(secret, "GET", PEER_PATH, {"bs": 0}, 30))
    assert admitted.status_code == 400 and "<Code>InvalidRequest</Code>" in admitted.text, admitted.text
    refused = httpx.get(url, headers=sign_request(secret + "x", "GET", PEER_PATH, {"bs": 0}, 30))
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text


def _cmdline(worker: Worker) -> str:
    assert worker.proc is not None
    return Path(f"/proc/{worker.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_secret_from_a_file(tmp_path: Path, redis_server: RedisServer, secret: str) -> None:
    path = tmp_path / "cluster-secret"
    path.write_text(f"{secret}\n")
    path.chmod(0o600)
    worker = _start(tmp_path, redis_server, "--cluster-secret-file", str(path))
    try:
        _holds(worker, secret)
        assert secret not in _cmdline(worker)
        assert "--cluster-secret puts" not in worker.log()
    finally:
        worker.stop()


def test_secret_file_from_the_environment(tmp_path: Path, redis_server: RedisServer, secret: str) -> None:
    path = tmp_path / "cluster-secret"
    path.write_text(f"  {secret}  ")
    worker = _start(tmp_path, redis_server, env={"S3CACHE_CLUSTER_SECRET_FILE": str(path)})
    try:
        _holds(worker, secret)
    finally:
        worker.stop()


def test_secret_from_the_environment(tmp_path: Path, redis_server: RedisServer, secret: str) -> None:
    worker = _start(tmp_path, redis_server, env={"S3CACHE_CLUSTER_SECRET": secret})
    try:
        _holds(worker, secret)
        assert secret not in _cmdline(worker)
        assert "--cluster-secret puts" not in worker.log()
    finally:
        worker.stop()


def test_secret_as_a_flag_works_with_a_warning(tmp_path: Path, redis_server: RedisServer, secret: str) -> None:
    worker = _start(tmp_path, redis_server, "--cluster-secret", secret)
    try:
        _holds(worker, secret)
        warnings = [line for line in worker.log().splitlines() if "WARNING" in line and "--cluster-secret" in line]
        assert len(warnings) == 1 and "--cluster-secret-file or S3CACHE_CLUSTER_SECRET" in warnings[0]
        assert secret not in warnings[0]
    finally:
        worker.stop()


def _refused(tmp_path: Path, redis_server: RedisServer, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "proxy.cli.main", "serve", "--port", "0", "--data",
                           str(tmp_path / "data"), "--redis", redis_server.url, *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stderr


def test_an_unusable_secret_file_stops_the_worker(tmp_path: Path, redis_server: RedisServer, secret: str) -> None:
    missing = tmp_path / "missing"
    assert "cluster.secret_file: cannot read" in _refused(tmp_path, redis_server, "--cluster-secret-file", str(missing))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "is empty" in _refused(tmp_path, redis_server, "--cluster-secret-file", str(empty))
    given = tmp_path / "given"
    given.write_text(secret)
    stderr = _refused(tmp_path, redis_server, "--cluster-secret-file", str(given),
                      env={"S3CACHE_CLUSTER_SECRET": secret})
    assert "not both" in stderr and secret not in stderr
