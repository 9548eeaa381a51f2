"""Fixtures for the cache scenarios: the session's moto origin seen through a counting proxy, and workers over it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.origin import ORIGIN_ENV, CountingProxy, MotoOrigin
from rig.processes import Worker
from tests.conftest import make_client

StartWorker = Callable[..., Worker]


@pytest.fixture(scope="session")
def counting(moto_origin: MotoOrigin) -> Iterator[CountingProxy]:
    """A real HTTP proxy in front of moto that records every request the origin receives."""
    proxy = CountingProxy(moto_origin.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def origin_s3(moto_origin: MotoOrigin):  # type: ignore[no-untyped-def]
    """boto3 pointed at the origin itself, past s3cache: for setting up and for checking what landed there."""
    return make_client(moto_origin.url)


@pytest.fixture
def origin_bucket(origin_s3) -> str:  # type: ignore[no-untyped-def]
    name = f"o-{uuid.uuid4().hex[:12]}"
    origin_s3.create_bucket(Bucket=name)
    return name


def cache_args(origin_url: str, cache_dir: Path, *extra: str, block_size: str = "4M", capacity: str = "1G",
               metadata_ttl: float = 2.0) -> list[str]:
    return ["--data", str(cache_dir.parent / "data"), "--origin", origin_url, "--cache-dir", str(cache_dir),
            "--cache-capacity", capacity, "--block-size", block_size, "--metadata-ttl", str(metadata_ttl), *extra]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers in front of an origin (stopped at the end of the test); cache_dir may be shared."""
    started: list[Worker] = []

    def start(origin_url: str, *extra: str, cache_dir: Path | None = None, env: dict[str, str] | None = None,
              **settings: object) -> Worker:
        workdir = tmp_path / f"w{len(started)}"
        workdir.mkdir()
        w = Worker(cache_args(origin_url, cache_dir or workdir / "blocks", *extra, **settings),  # type: ignore[arg-type]
                   workdir, env={**ORIGIN_ENV, **(env or {})}, backend="s3")
        started.append(w)
        return w.start()

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def cached(counting: CountingProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One worker for the module: 4 MiB blocks, 1 GiB of cache, metadata trusted for 2 s."""
    workdir = tmp_path_factory.mktemp("cached")
    w = Worker(cache_args(counting.url, workdir / "blocks"), workdir, env=dict(ORIGIN_ENV), backend="s3").start()
    yield w
    w.stop()
