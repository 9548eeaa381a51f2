"""`s3cache sidecar`: Pachyderm-style job gateways, driven with the AWS CLI inside the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rig.origin import CountingProxy, MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer

CLI = [sys.executable, "-m", "proxy.cli.main", "sidecar"]
BIN = str(Path(sys.executable).parent)


@pytest.fixture
def labresults(tmp_path: Path) -> Path:
    root = tmp_path / "labresults"
    (root / "2026" / "run-1").mkdir(parents=True)
    (root / "summary.csv").write_text("sample,value\na,1\nb,2\n")
    (root / "2026" / "run-1" / "raw.bin").write_bytes(os.urandom(300_000))
    return root


def _job(script: str) -> list[str]:
    return ["--", "bash", "-c", f"set -e; export PATH={BIN}:$PATH; {script}"]


def test_job_reads_inputs_writes_out_and_its_status_passes_through(labresults: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    job = _job("cd \"$JOB_DIR\"; "
               "aws s3 cp s3://labresults/ ./in --recursive --only-show-errors; "
               "aws s3 cp ./in s3://out/copy --recursive --only-show-errors; "
               "echo \"$S3_ENDPOINT\" > endpoint.txt; "
               "if aws s3 cp in/summary.csv s3://labresults/new.csv 2> refused.txt; then exit 99; fi; "
               "exit 7")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    done = subprocess.run([*CLI, "--input", f"labresults=file://{labresults}", "--output", f"out=file://{results}",
                           "--job-id", "job-42", "--verify", *job], env={**os.environ, "JOB_DIR": str(job_dir)},
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 7, done.stderr
    for name in ("summary.csv", "2026/run-1/raw.bin"):
        original = (labresults / name).read_bytes()
        assert (job_dir / "in" / name).read_bytes() == original
        assert (results / "job-42" / "copy" / name).read_bytes() == original  # out = a per-job prefix
    assert not (labresults / "new.csv").exists()
    refused = (job_dir / "refused.txt").read_text()
    assert "AccessDenied" in refused and "read-only" in refused
    assert (job_dir / "endpoint.txt").read_text().startswith("http://127.0.0.1:")


def test_verify_refuses_a_request_not_signed_with_the_job_token(labresults: Path, tmp_path: Path) -> None:
    job = _job("python - <<'PY'\n"
               "import os, boto3\n"
               "from botocore.exceptions import ClientError\n"
               "ok = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'])\n"
               "assert ok.get_object(Bucket='labresults', Key='summary.csv')['Body'].read().startswith(b'sample')\n"
               "bad = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], aws_secret_access_key='wrong',\n"
               "                   aws_access_key_id=os.environ['AWS_ACCESS_KEY_ID'])\n"
               "try:\n"
               "    bad.get_object(Bucket='labresults', Key='summary.csv')\n"
               "    raise SystemExit(3)\n"
               "except ClientError as e:\n"
               "    assert e.response['Error']['Code'] == 'SignatureDoesNotMatch', e.response\n"
               "stranger = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], aws_access_key_id='x',\n"
               "                        aws_secret_access_key='x')\n"
               "try:\n"
               "    stranger.list_objects_v2(Bucket='labresults')\n"
               "    raise SystemExit(4)\n"
               "except ClientError as e:\n"
               "    assert e.response['Error']['Code'] == 'InvalidAccessKeyId', e.response\n"
               "PY")
    done = subprocess.run([*CLI, "--input", f"labresults=file://{labresults}", "--token", "job-token-1",
                           "--verify", *job], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_a_command_it_prints_the_environment_and_serves(labresults: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([*CLI, "--input", f"labresults=file://{labresults}", "--output",
                             f"out=file://{tmp_path / 'results'}", "--token", "tok-9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        env = {}
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(env) < 7 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                env[name] = value
        assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "tok-9"
        assert env["S3_ENDPOINT"] == env["AWS_ENDPOINT_URL"]
        s3 = boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], aws_access_key_id="tok-9",
                          aws_secret_access_key="tok-9", region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}))
        assert s3.get_object(Bucket="labresults", Key="summary.csv")["Body"].read() == \
            (labresults / "summary.csv").read_bytes()
        s3.put_object(Bucket="out", Key="result.txt", Body=b"42")
        assert s3.list_objects_v2(Bucket="out")["Contents"][0]["Key"] == "result.txt"
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket="labresults", Key="summary.csv")
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
        assert (labresults / "summary.csv").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(env["S3_ENDPOINT"] + "/_s3cache/healthz", timeout=1)  # the worker went with it


def test_joining_a_cluster_reads_inputs_through_the_shared_cache(tmp_path: Path) -> None:
    """--redis: the job's gateway holds nothing and reads the inputs through the cluster's workers."""
    moto = MotoOrigin(tmp_path).start()
    counting = CountingProxy(moto.port).start()
    redis = RedisServer(tmp_path).start()
    creds = {"AWS_ACCESS_KEY_ID": "origin", "AWS_SECRET_ACCESS_KEY": "origin"}
    worker = None
    try:
        origin = boto3.client("s3", endpoint_url=moto.url, aws_access_key_id="origin", aws_secret_access_key="origin",
                              region_name="us-east-1")
        origin.create_bucket(Bucket="lab")
        data = os.urandom(3 * (1 << 20) + 17)
        origin.put_object(Bucket="lab", Key="results/scan.bin", Body=data)
        worker = Worker(["--origin", counting.url, "--cache-dir", str(tmp_path / "w0"), "--block-size", "1M",
                         "--redis", redis.url, "--cluster-secret", "sekret"], tmp_path, env=creds).start()
        job_dir = tmp_path / "job"
        job_dir.mkdir()
        job = _job(f'cd {job_dir}; aws s3 cp s3://labresults/scan.bin ./scan.bin --only-show-errors')
        for _ in range(2):  # the second job's read must not reach the origin: the worker holds every block
            done = subprocess.run([*CLI, "--origin", counting.url, "--input", "labresults=s3://lab/results",
                                   "--redis", redis.url, "--cluster-secret", "sekret", "--block-size", "1M", *job],
                                  env={**os.environ, **creds}, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert (job_dir / "scan.bin").read_bytes() == data
        gets = counting.object_gets("/lab/results/scan.bin")
        assert sorted(s.range or "bytes=0-1048575" for s in gets) == sorted(  # no range: the whole cold read, block 0
            f"bytes={i << 20}-{min((i + 1) << 20, len(data)) - 1}" for i in range(4))  # each block once, ever
        assert len(list((tmp_path / "w0").rglob("*"))) > 4  # the worker holds the blocks, the sidecars nothing
        mismatch = subprocess.run([*CLI, "--origin", counting.url, "--input", "labresults=s3://lab/results",
                                   "--redis", redis.url, "--cluster-secret", "sekret", "--block-size", "4M",
                                   "--", "true"], env={**os.environ, **creds}, capture_output=True, text=True,
                                  timeout=120)
        assert mismatch.returncode == 2
        assert "uses 1048576-byte blocks, not 4194304" in mismatch.stderr
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
        counting.stop()
        moto.stop()
