"""The s3cache command line, as a person meets it: help, configuration errors, the embedded default."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cache.blocks.store import BlockStore
from rig.processes import ROOT, s3_env, wait_http

CLI = [sys.executable, "-m", "proxy.cli.main"]
SERVE_FLAGS = ["--config", "--host", "--port", "--processes", "--region", "--data", "--cache-dir", "--cache-capacity",
               "--block-size", "--log-level", "--origin", "--mount", "--metadata-ttl", "--redis", "--cluster-secret",
               "--advertise-url", "--data-path"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})})


def test_help_names_every_command_and_flag() -> None:
    top = run("--help")
    assert top.returncode == 0
    assert "serve" in top.stdout and "status" in top.stdout
    serve = run("serve", "--help")
    assert serve.returncode == 0
    for flag in SERVE_FLAGS:
        assert flag in serve.stdout, flag


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--port", "70000"], {}, "server.port"),
    ([], {"S3CACHE_SERVER_PORT": "not-a-port"}, "server.port: Input should be a valid integer, unable to parse "
                                                "string as an integer (from S3CACHE_SERVER_PORT)"),
    ([], {"S3CACHE_CACHE_CAPACITY_BYTES": "12 parsecs"}, "cache.capacity_bytes"),
    (["--mount", "broken"], {}, "--mount 'broken': expected NAME=URI[,ro]"),
    (["--mount", "x=ftp://nowhere"], {}, "mounts.0.uri"),
    (["--redis", "redis://127.0.0.1:1"], {}, "cluster.secret"),
])
def test_bad_configuration_fails_at_start_with_one_line_naming_the_key(
        args: list[str], env: dict[str, str], named: str, tmp_path: Path) -> None:
    port = [] if "S3CACHE_SERVER_PORT" in env else ["--port", "0"]  # a flag would win over the variable
    result = run("serve", "--data", str(tmp_path / "data"), *port, *args, env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s3cache: invalid configuration: ")
    assert named in lines[0]


def test_bad_config_file_key_is_named(tmp_path: Path) -> None:
    config = tmp_path / "s3cache.toml"
    config.write_text('[server]\nport = 9000\ncolour = "blue"\n')
    result = run("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "s3cache: invalid configuration: server.colour: unknown key"


def test_no_arguments_is_the_embedded_default_and_aws_s3_ls_works(tmp_path: Path) -> None:
    """`s3cache serve` alone: 127.0.0.1:29998 over ./data, created if missing, no Redis."""
    try:
        with httpx.Client() as client:
            client.get("http://127.0.0.1:29998/_s3cache/healthz", timeout=0.5)
        pytest.skip("port 29998 is already in use on this machine")
    except httpx.HTTPError:
        pass
    proc = subprocess.Popen([*CLI, "serve"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("S3CACHE_")})
    try:
        started = time.monotonic()
        wait_http("http://127.0.0.1:29998/_s3cache/healthz", proc=proc)
        assert time.monotonic() - started < 10
        assert (tmp_path / "data").is_dir()
        (tmp_path / "data" / "photos").mkdir()
        (tmp_path / "data" / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        env = s3_env("http://127.0.0.1:29998")
        aws = str(Path(sys.executable).parent / "aws")
        buckets = subprocess.run([aws, "s3", "ls"], capture_output=True, text=True, env=env, timeout=60)
        assert buckets.returncode == 0, buckets.stderr
        assert buckets.stdout.split()[-1] == "photos"
        keys = subprocess.run([aws, "s3", "ls", "s3://photos/"], capture_output=True, text=True, env=env, timeout=60)
        assert keys.stdout.split()[-2:] == ["20", "cat.jpg"]
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=10)[0]
    assert "http://127.0.0.1:29998" in output
    assert "aws --endpoint-url http://127.0.0.1:29998 s3 ls" in output


def test_check_drops_corrupt_partial_and_orphan_block_files(tmp_path: Path) -> None:
    """A half-written file is removed by loading the store, before the check counts anything."""
    cache = tmp_path / "cache"
    store = BlockStore(cache, 1 << 30)
    good, bad = "a" * 64, "b" * 64
    asyncio.run(store.write(good, b"good block" * 1000))
    asyncio.run(store.write(bad, b"bad block!" * 1000))
    path = Path(store.path(bad))
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    (cache / "tmp" / "half-written").write_bytes(b"x")
    (cache / "aa" / "not-a-block").write_bytes(b"y")
    result = run("check", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{cache}: 1 blocks good, dropped 1 corrupt, 0 partial, 1 orphan files"
    assert Path(store.path(good)).exists() and not path.exists() and not (cache / "aa" / "not-a-block").exists()
