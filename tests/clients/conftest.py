"""Real S3 clients against s3cache as it is deployed (``rig.cluster.Cluster``): nginx (the shipped config) in
front of three workers that share one Redis and cache one S3 origin (moto's server).

A test that takes ``cluster`` runs once per data path named by its ``modes`` marker (``proxy`` when it has
none). The cluster of a mode is started once for the session; pytest groups the tests by mode, so one cluster
runs at a time and is stopped before the next mode's starts. Each test writes into a bucket of its own.

Every client is given its own access key, so the workers' access logs (user, operation, bucket, key,
status per request) tell which requests were that client's, and whether they were answered with a 307.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from rig.cluster import Access, Cluster
from rig.origin import MotoOrigin
from rig.redis import RedisServer

MODES = ("proxy", "auto", "redirect")
BLOCK = 1 << 20  # the cluster's --block-size


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "modes(*names): data paths (proxy, auto, redirect) a client test runs in")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cluster" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("modes")
        modes = marker.args if marker else ("proxy",)
        assert set(modes) <= set(MODES), modes
        metafunc.parametrize("cluster", modes, indirect=True, scope="session")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: str) -> bytes:
    """Bytes that differ per seed and per offset: a wrong object or a wrong offset shows as wrong content."""
    out = bytearray()
    counter = 0
    base = seed.encode()
    while len(out) < size:
        out += hashlib.sha512(base + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="session")
def clients_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoOrigin]:
    origin = MotoOrigin(tmp_path_factory.mktemp("clients-moto"))
    try:
        yield origin.start()
    finally:
        origin.stop()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, clients_origin: MotoOrigin,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    mode = request.param
    workdir = tmp_path_factory.mktemp(f"clients-{mode}")
    c = Cluster(mode, clients_origin, workdir, RedisServer(workdir))
    try:
        yield c.start()
    finally:
        c.stop()


def assert_redirected(cluster: Cluster, user: str, bucket: str, follower: bool = True, minimum: int = 1,
                      agent: str = "") -> list[Access]:
    """The client's reads met 307s exactly when its data path says so (redirect mode: always; auto: if it is a
    known follower; proxy: never), nginx passed those 307s to a client whose User-Agent contains agent, and
    reads of it were served (the redirected ones as the same user, carried by the token); returns the 307s."""
    mine = cluster.access(user, bucket)
    redirects = [a for a in mine if a.status == 307]
    assert all(a.operation in ("GetObject", "HeadObject") for a in redirects), redirects
    if cluster.mode == "redirect" or (cluster.mode == "auto" and follower):
        assert len(redirects) >= minimum, f"{user} was redirected {len(redirects)} times: the test proved nothing"
    else:
        assert redirects == [], f"{cluster.mode} mode redirected {user}"
    # the 307s went out through the load balancer to the client (nginx logs each with its status)
    assert cluster.nginx is not None
    sent = re.findall(rf'"(?:GET|HEAD) /{re.escape(bucket)}/\S* HTTP/1\.1" 307 \d+ "[^"]*" "[^"]*{re.escape(agent)}',
                      cluster.nginx.access_log())
    assert len(sent) >= len(redirects), f"workers logged {len(redirects)} redirects of {user}, nginx passed {len(sent)}"
    served = [a for a in mine if a.operation in ("GetObject", "HeadObject") and a.status in (200, 206)]
    assert len(served) >= len(redirects), f"{len(redirects)} redirects of {user}, {len(served)} reads served"
    return redirects


def client_env(cluster: Cluster, user: str, **extra: str) -> dict[str, str]:
    """The process environment with AWS variables for user at the cluster's endpoint, plus extra."""
    return {**cluster.env(user), **extra}
