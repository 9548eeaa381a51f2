"""Real processes on free 127.0.0.1 ports: s3cache workers, and starting, waiting for and stopping children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent


def sigterm_raises() -> None:
    """SIGTERM unwinds like Ctrl-C, so every finally block stops what it started."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def stop_process(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Signal a child we started, wait for it, and kill it if it will not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Worker:
    """One `s3cache serve` process."""

    args: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "dir"  # what it serves: "dir" (a local directory) or "s3" (an S3 origin)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.port}.log"

    def start(self) -> Worker:
        self.port = self.port or free_port()
        env = {**os.environ, **self.env}
        cmd = [sys.executable, "-m", "proxy.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               *self.args]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/_s3cache/healthz", proc=self.proc, timeout_s=60)  # a loaded 2-core host starts slowly
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def s3_env(endpoint: str, user: str = "tester") -> dict[str, str]:
    """Environment for CLI clients (awscli) pointed at endpoint."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": user,
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a worker's Prometheus endpoint: (name, sorted labels) -> value."""
    r = httpx.get(f"{url}/_s3cache/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(r.text) for sample in family.samples}
