"""`s3cache sidecar`: a job-scoped S3 gateway, in the style of Pachyderm's S3-enabled pipelines.

It starts a worker on a free 127.0.0.1 port whose input buckets are read-only mounts and whose output
bucket (``out``) is a writable mount of a per-job prefix that starts empty, hands the job
``S3_ENDPOINT``/``AWS_ENDPOINT_URL`` and credentials, runs the job's command, stops the worker and exits
with the job's status. Without a command it prints the environment to use and serves until interrupted.
Credentials are the job token (access key = secret key = token, Pachyderm's rule); ``--verify`` makes the
worker check SigV4 signatures against it. ``--redis`` joins a cluster's cache, so inputs come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from conf.settings import ConfigError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sidecar = commands.add_parser(
        "sidecar", help="run a command against a job-scoped S3 gateway (read-only inputs, a writable 'out')",
        description="Start a job-scoped s3cache worker, export S3_ENDPOINT, AWS_ENDPOINT_URL and credentials to "
                    "COMMAND, run it and exit with its status. Without COMMAND, print the environment and serve "
                    "until interrupted.")
    sidecar.add_argument("--input", action="append", default=[], metavar="NAME=URI",
                         help="a read-only input bucket: s3://bucket[/prefix] (through --origin) or file:///dir; "
                              "repeatable")
    sidecar.add_argument("--output", metavar="NAME=URI", help="the writable output bucket, usually out=URI; the "
                         "job writes under URI/<job id>/, which starts empty")
    sidecar.add_argument("--origin", metavar="URL", help="S3 origin for s3:// inputs and outputs (credentials "
                         "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    sidecar.add_argument("--job-id", help="job id (default: time and random): names the output prefix")
    sidecar.add_argument("--token", help="the job's credential: access key = secret key = token (default random)")
    sidecar.add_argument("--verify", action="store_true", help="verify SigV4 signatures against the token")
    sidecar.add_argument("--redis", metavar="URL", help="join this cluster's cache (needs --cluster-secret)")
    sidecar.add_argument("--cluster-secret", metavar="SECRET", help="the cluster's shared secret")
    sidecar.add_argument("--block-size", default="4M", metavar="SIZE",
                         help="block size; with --redis it must be the cluster's (default 4M)")
    sidecar.add_argument("--cache-dir", metavar="DIR", help="block cache directory (default: a temporary one)")
    sidecar.add_argument("--log", metavar="FILE", help="worker log (default: <work dir>/worker.log)")
    sidecar.add_argument("job", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="the job to run")


def _split(text: str, flag: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri:
        raise ConfigError(f"{flag} {text!r}: expected NAME=URI")
    if urlsplit(uri).scheme not in ("s3", "file"):
        raise ConfigError(f"{flag} {text!r}: the URI must be s3://bucket[/prefix] or file:///dir")
    return name, uri


def _job_output(uri: str, job_id: str) -> str:
    return uri.rstrip("/") + "/" + job_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers and booleans: JSON's spelling is TOML's


def render_config(args: argparse.Namespace, job_id: str, token: str, port: int, work: Path) -> str:
    lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "[storage]",
             f"data_dir = {_toml(str(work / 'data'))}", "[cache]",
             f"cache_dir = {_toml(args.cache_dir or str(work / 'cache'))}",
             f"block_size_bytes = {_toml(args.block_size)}"]
    if args.origin:
        lines += ["[origin]", f"endpoint = {_toml(args.origin)}"]
    if args.redis:  # a gateway into the shared cache: reads go to the blocks' owners, nothing is placed here
        lines.insert(lines.index("[cache]") + 1, "capacity_bytes = 0")
        lines += ["[cluster]", f"redis_url = {_toml(args.redis)}", f"secret = {_toml(args.cluster_secret or '')}",
                  f"worker_id = {_toml('sidecar-' + job_id)}"]
    if args.verify:
        lines += ["[auth]", 'mode = "sigv4"', f"users = {_toml({token: token})}"]
    mounts = [(*_split(text, "--input"), "read-only") for text in args.input]
    if args.output:
        name, uri = _split(args.output, "--output")
        mounts.append((name, _job_output(uri, job_id), "read-write"))
    for name, uri, mode in mounts:
        lines += ["[[mounts]]", f"bucket = {_toml(name)}", f"uri = {_toml(uri)}", f"mode = {_toml(mode)}"]
    return "\n".join(lines) + "\n"


def job_environment(endpoint: str, token: str) -> dict[str, str]:
    return {"S3_ENDPOINT": endpoint, "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": token, "AWS_SECRET_ACCESS_KEY": token, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1"}


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ConfigError as error:
        print(f"s3cache sidecar: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    command = args.job[1:] if args.job[:1] == ["--"] else args.job
    job_id = args.job_id or time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    token = args.token or secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix=f"s3cache-sidecar-{job_id}-"))
    port = _free_port()
    config = work / "s3cache.toml"
    config.write_text(render_config(args, job_id, token, port, work))
    log_path = Path(args.log) if args.log else work / "worker.log"
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "proxy.cli.main", "serve", "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(endpoint, worker, log_path)
        env = job_environment(endpoint, token)
        if not command:
            for name, value in env.items():
                print(f"export {name}={value}")
            print(f"# s3cache sidecar for job {job_id} at {endpoint}; Ctrl-C stops it", file=sys.stderr)
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            try:
                worker.wait()
            except KeyboardInterrupt:
                pass
            return 0
        print(f"s3cache sidecar: job {job_id} at {endpoint}, worker log {log_path}", file=sys.stderr)
        return subprocess.call(command, env={**os.environ, **env})
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        if not args.log:
            shutil.rmtree(work, ignore_errors=True)


def _wait_ready(endpoint: str, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ConfigError(f"the job's worker exited with {worker.returncode}:\n{tail}")
        try:
            if httpx.get(endpoint + "/_s3cache/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise ConfigError("the job's worker did not become ready within 30 s")
