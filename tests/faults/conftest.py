"""The fault suite's fixtures: workers over an origin (tests/e2e/conftest.py), and one cluster for a module:
three workers, one Redis and nginx over the session's moto (rig/cluster.py), which a test may kill parts of and
must leave whole (``whole`` restarts whatever it finds stopped)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rig.cluster import Cluster
from rig.origin import CountingProxy, MotoOrigin
from rig.redis import RedisServer
from tests.conftest import make_client
from tests.e2e.conftest import start_worker

__all__ = ["cluster", "relay", "start_worker"]


def seed(moto_origin: MotoOrigin, objects: dict[str, bytes], bucket: str = "") -> str:
    """A new bucket (a random name unless given) made straight at the origin, holding objects; its name."""
    s3 = make_client(moto_origin.url)
    bucket = bucket or f"f-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    return bucket


@pytest.fixture
def relay(moto_origin: MotoOrigin) -> Iterator[CountingProxy]:
    """The session's moto seen through a counting proxy of the test's own (a test may give it a fault plan)."""
    proxy = CountingProxy(moto_origin.port).start()
    yield proxy
    proxy.stop()


def whole(cluster: Cluster) -> Cluster:
    """Every part of the cluster running again (a test that killed one restarts it here, on the same port)."""
    if cluster.redis.proc is None or cluster.redis.proc.poll() is not None:
        cluster.redis.start()
    for worker in cluster.workers.values():
        if worker.proc is None or worker.proc.poll() is not None:
            worker.proc = None
            worker.start()
    cluster.wait_membership()
    return cluster


@pytest.fixture(scope="module")
def cluster(moto_origin: MotoOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("faults-cluster")
    c = Cluster("proxy", moto_origin, workdir, RedisServer(workdir))
    try:
        yield c.start()
    finally:
        c.stop()
