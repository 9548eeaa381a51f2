"""A redirect token admits the one read it was issued for, nothing else: three real workers, one Redis, moto.

The workers verify SigV4 (``[auth] mode = "sigv4"``) and redirect reads (``data_path`` redirect, and auto
for a client that follows 307). A signed GET of a key earns a 307 whose Location carries a token; whoever
holds that Location must not be able to PUT, re-tag, copy onto, delete, start an upload on, or read
another key with it, on any worker, and the key's bytes and tags stay what they were. The GET (and a HEAD
with the token of a HEAD) it was issued for still works.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from xml.etree import ElementTree

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from rig.origin import ORIGIN_ENV, MotoOrigin
from rig.processes import Worker
from rig.redis import RedisServer

pytestmark = pytest.mark.slow

USER, USER_SECRET = "alice", "alice-secret"
CLUSTER_SECRET = "token-test-secret"
WORKER_IDS = ("w0", "w1", "w2")
FOLLOWER = "curl/8.5.0"  # a User-Agent data_path = "auto" redirects
TAGGING = b'<Tagging><TagSet><Tag><Key>owned</Key><Value>yes</Value></Tag></TagSet></Tagging>'


def signed(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers of a SigV4-signed request (alice's key), as boto3 would sign it."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    S3SigV4Auth(Credentials(USER, USER_SECRET), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


@dataclass
class TokenCluster:
    mode: str
    origin: MotoOrigin
    bucket: str
    workers: dict[str, Worker] = field(default_factory=dict)

    def url(self, wid: str, key: str) -> str:
        return f"{self.workers[wid].url}/{self.bucket}/{quote(key, safe='/')}"

    def origin_s3(self) -> Any:
        return boto3.client("s3", endpoint_url=self.origin.url, aws_access_key_id="origin-key",
                            aws_secret_access_key="origin-secret", region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def redirected(self, method: str, key: str, timeout_s: float = 15.0) -> str:
        """The Location of a 307 some worker answers a signed request of method for key with."""
        deadline = time.monotonic() + timeout_s
        while True:
            for wid in WORKER_IDS:
                url = self.url(wid, key)
                r = httpx.request(method, url, headers={**signed(method, url), "user-agent": FOLLOWER}, timeout=30)
                assert r.status_code in (200, 307), (wid, r.status_code, r.text[:300])
                if r.status_code == 307:
                    return r.headers["location"]
            if time.monotonic() > deadline:
                raise AssertionError(f"no worker redirected a {method} of {key}: the test would prove nothing")
            time.sleep(0.2)


def _wait_membership(workers: dict[str, Worker], timeout_s: float = 20.0) -> None:
    want = ", ".join(WORKER_IDS)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = [re.findall(r"live workers: (.*)$", w.log(), re.MULTILINE) for w in workers.values()]
        if all(lines and lines[-1] == want for lines in last):
            return
        time.sleep(0.1)
    raise TimeoutError(f"the workers did not all see {want}")


@pytest.fixture(scope="module", params=["redirect", "auto"])
def cluster(request: pytest.FixtureRequest, moto_origin: MotoOrigin,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenCluster]:
    mode: str = request.param
    workdir: Path = tmp_path_factory.mktemp(f"token-{mode}")
    config = workdir / "s3cache.toml"
    config.write_text(f'[auth]\nmode = "sigv4"\n\n[auth.users]\n{USER} = "{USER_SECRET}"\n')
    redis = RedisServer(workdir)
    rig = TokenCluster(mode, moto_origin, f"tok-{mode}-{uuid.uuid4().hex[:8]}")
    rig.origin_s3().create_bucket(Bucket=rig.bucket)
    try:
        redis.start()
        for wid in WORKER_IDS:
            wdir = workdir / wid
            wdir.mkdir()
            args = ["--config", str(config), "--data", str(wdir / "data"), "--origin", moto_origin.url,
                    "--cache-dir", str(wdir / "blocks"), "--block-size", "1M", "--cache-capacity", "64M",
                    "--redis", redis.url, "--cluster-secret", CLUSTER_SECRET, "--worker-id", wid,
                    "--data-path", mode]
            rig.workers[wid] = Worker(args, wdir, env=dict(ORIGIN_ENV), backend="s3")
        with concurrent.futures.ThreadPoolExecutor(len(WORKER_IDS)) as pool:
            for future in [pool.submit(w.start) for w in rig.workers.values()]:
                future.result()
        _wait_membership(rig.workers)
        yield rig
    finally:
        for w in rig.workers.values():
            w.stop()
        redis.stop()


def refused(response: httpx.Response, what: str) -> None:
    """403 AccessDenied as S3 error XML, refused for the token (not merely for lacking a signature)."""
    assert response.status_code == 403, (what, response.status_code, response.text[:300])
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Error", (what, response.text[:300])
    assert root.findtext("Code") == "AccessDenied", (what, response.text[:300])
    assert "token" in (root.findtext("Message") or "").lower(), (what, response.text[:300])


def test_a_get_token_admits_only_that_get(cluster: TokenCluster) -> None:
    s3 = cluster.origin_s3()
    key, other = f"victim/{uuid.uuid4().hex}.bin", f"other/{uuid.uuid4().hex}.bin"
    data = os.urandom((1 << 20) + 123_457)  # two blocks
    s3.put_object(Bucket=cluster.bucket, Key=key, Body=data)
    s3.put_object(Bucket=cluster.bucket, Key=other, Body=b"someone else's bytes")

    # unsigned, nothing is served: the refusals below are the token's to make
    plain = httpx.get(cluster.url("w0", key), timeout=10)
    assert plain.status_code == 403 and b"AccessDenied" in plain.content

    location = cluster.redirected("GET", key)
    parts = urlsplit(location)
    token = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert {"x-s3cache-exp", "x-s3cache-user", "x-s3cache-sig"} <= token.keys()
    assert token["x-s3cache-user"] == USER
    bases = {f"{parts.scheme}://{parts.netloc}"} | {w.url for w in cluster.workers.values()}
    victim = parts.path
    other_path = f"/{cluster.bucket}/{quote(other, safe='/')}"

    for base in sorted(bases):  # the worker the 307 names, and every other one
        attempts: list[tuple[str, str, str, dict[str, str], dict[str, str], bytes]] = [
            ("PutObject", "PUT", victim, {}, {}, b"overwritten"),
            ("PutObjectTagging", "PUT", victim, {"tagging": ""}, {"content-type": "application/xml"}, TAGGING),
            ("DeleteObjectTagging", "DELETE", victim, {"tagging": ""}, {}, b""),
            ("DeleteObject", "DELETE", victim, {}, {}, b""),
            ("CopyObject", "PUT", victim, {}, {"x-amz-copy-source": other_path,
                                               "x-amz-metadata-directive": "REPLACE"}, b""),
            ("CreateMultipartUpload", "POST", victim, {"uploads": ""}, {}, b""),
            ("GetObject of another key", "GET", other_path, {}, {}, b""),
            ("GetObjectTagging (a GET, not the GET)", "GET", victim, {"tagging": ""}, {}, b""),
            ("ListParts (a GET, not the GET)", "GET", victim, {"uploadId": "x"}, {}, b""),
        ]
        with httpx.Client(timeout=30, follow_redirects=False) as http:
            for what, method, path, params, headers, body in attempts:
                r = http.request(method, f"{base}{path}", params={**params, **token}, headers=headers, content=body)
                refused(r, f"{what} at {base}")
            # the Location itself, sent with another method
            refused(http.put(f"{base}{victim}?{parts.query}", content=b"overwritten"), f"PUT of the Location at {base}")
            refused(http.delete(f"{base}{victim}?{parts.query}"), f"DELETE of the Location at {base}")
            # the token is bound to its method: a GET's token does not make a HEAD
            head = http.head(f"{base}{victim}?{parts.query}")
            assert head.status_code == 403, (base, head.status_code)

    # nothing changed, at the origin or through s3cache
    assert s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read() == data
    assert s3.get_object_tagging(Bucket=cluster.bucket, Key=key)["TagSet"] == []
    assert not s3.list_multipart_uploads(Bucket=cluster.bucket).get("Uploads")
    assert s3.get_object(Bucket=cluster.bucket, Key=other)["Body"].read() == b"someone else's bytes"
    for wid in WORKER_IDS:
        url = cluster.url(wid, key)
        r = httpx.get(url, headers=signed("GET", url), timeout=30, follow_redirects=True)
        assert r.status_code == 200 and r.content == data, wid

    # the GET it was issued for still works, after all those refusals
    r = httpx.get(location, timeout=30)
    assert r.status_code == 200 and r.content == data
    ranged = httpx.get(location, headers={"range": "bytes=1048570-1048600"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == data[1048570:1048601]

    # a signed write of the same user is served: the refusals were the token's, not the bucket's
    spare = cluster.url("w0", f"spare/{uuid.uuid4().hex}")
    assert httpx.put(spare, content=b"mine", headers=signed("PUT", spare, b"mine"), timeout=30).status_code == 200


def test_a_head_token_admits_only_that_head(cluster: TokenCluster) -> None:
    s3 = cluster.origin_s3()
    key = f"headed/{uuid.uuid4().hex}.bin"
    data = os.urandom(300_001)
    s3.put_object(Bucket=cluster.bucket, Key=key, Body=data)
    location = cluster.redirected("HEAD", key)
    r = httpx.head(location, timeout=30)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
    parts = urlsplit(location)
    token = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = f"{parts.scheme}://{parts.netloc}"
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        refused(http.get(location), "GET with a HEAD's token")
        refused(http.put(location, content=b"overwritten"), "PUT with a HEAD's token")
        refused(http.delete(location), "DELETE with a HEAD's token")
        refused(http.put(f"{base}{parts.path}", params={"tagging": "", **token}, content=TAGGING),
                "PutObjectTagging with a HEAD's token")
    assert s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read() == data
    assert s3.get_object_tagging(Bucket=cluster.bucket, Key=key)["TagSet"] == []
    # and the GET of the key, signed, reads the same bytes
    url = cluster.url("w0", key)
    got = httpx.get(url, headers=signed("GET", url), timeout=30, follow_redirects=True)
    assert got.status_code == 200 and got.content == data
