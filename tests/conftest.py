"""Shared fixtures: one real s3cache worker per backend, and clients pointed at it.

The session ``worker`` runs every test that uses it twice: over the embedded directory ("dir") and in
front of a real S3 origin, moto's server ("s3"). Tests that look at the data directory (``data_dir``)
run on the directory backend only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker


def make_client(endpoint: str, user: str = "tester", **config: object):  # type: ignore[no-untyped-def]
    config = {"retries": {"max_attempts": 1}, **config}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=user,
        aws_secret_access_key="secret",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, **config),  # type: ignore[arg-type]
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "not_on_origin(reason): skip the S3-origin variant of a test (the reason says "
                                       "why: a rule of the directory under storage, or where moto differs from AWS)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker("not_on_origin")
        callspec = getattr(item, "callspec", None)
        if mark is not None and callspec is not None and callspec.params.get("worker") == "s3":
            item.add_marker(pytest.mark.skip(reason=mark.kwargs.get("reason") or mark.args[0]))


@pytest.fixture(scope="session")
def moto_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoOrigin]:
    """One moto S3 server for the session; tests keep apart by using their own buckets."""
    origin = MotoOrigin(tmp_path_factory.mktemp("moto")).start()
    yield origin
    origin.stop()


def backend_worker(request: pytest.FixtureRequest, workdir: Path, *extra: str, capacity: str = "256M") -> Worker:
    """A worker (not started) over the backend request.param names: "dir" (a directory) or "s3" (the moto origin)."""
    args = [*extra, "--data", str(workdir / "data")]
    env: dict[str, str] = {}
    if request.param == "s3":
        origin: MotoOrigin = request.getfixturevalue("moto_origin")
        args += ["--origin", origin.url, "--cache-dir", str(workdir / "blocks"), "--cache-capacity", capacity,
                 "--block-size", "1M"]
        env = dict(ORIGIN_ENV)
    return Worker(args, workdir, env=env, backend=request.param)


@pytest.fixture(scope="session", params=["dir", "s3"])
def worker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = backend_worker(request, tmp_path_factory.mktemp(f"worker-{request.param}")).start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def backend(worker: Worker) -> str:
    """"dir" or "s3": what the session worker serves."""
    return worker.backend


@pytest.fixture(scope="session")
def data_dir(worker: Worker, backend: str) -> Path:
    if backend != "dir":
        pytest.skip("inspects the data directory: directory backend only")
    return worker.workdir / "data"


@pytest.fixture(scope="session")
def s3(worker: Worker):  # type: ignore[no-untyped-def]
    return make_client(worker.url)


@pytest.fixture
def bucket(s3) -> str:  # type: ignore[no-untyped-def]
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
