"""The cache in front of a real S3 origin (moto), proven by counting the requests the origin receives.

Every test uses its own origin bucket, so the session's counting proxy can be shared: a test looks only at
requests under its own bucket. Block size is 4 MiB unless a test says otherwise.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from cache.blocks.reader import block_id
from cache.blocks.store import PAGE_BYTES, decode_header
from rig.nginx import start_nginx
from rig.origin import CountingProxy, MotoOrigin, Seen
from rig.processes import Worker, free_port, scrape, stop_process
from tests.conftest import make_client
from tests.e2e.conftest import StartWorker

MIB = 1 << 20
BLOCK = 4 * MIB
TTL_S = 2.0


# ---- helpers -------------------------------------------------------------------------------------


def data_gets(proxy: CountingProxy, bucket: str, key: str) -> list[str | None]:
    """The Range headers of the object-data GETs the origin received for bucket/key, in order of arrival."""
    return [s.range for s in proxy.object_gets(f"/{bucket}/{key}")]


def block_of(header: str | None, size: int, block: int = BLOCK) -> int:
    """The block an origin GET asked for; fails unless its Range is one whole block of an object of size bytes.
    A GET without a Range is a cold read of a whole object: it fills block 0 (and is cut there)."""
    if header is None:
        return 0
    assert header.startswith("bytes="), f"an origin GET with another kind of Range: {header!r}"
    first, _, last = header[len("bytes="):].partition("-")
    start, end = int(first), int(last)
    assert start % block == 0 and min(start + block, size) - 1 <= end < start + block, f"{header}: not one block"
    return start // block


def blocks_asked(proxy: CountingProxy, bucket: str, key: str, size: int, block: int = BLOCK) -> list[int]:
    """The blocks of bucket/key the origin was asked for, in order of arrival (one entry per origin GET)."""
    return [block_of(header, size, block) for header in data_gets(proxy, bucket, key)]


def fetched(proxy: CountingProxy, bucket: str, key: str, size: int, block: int = BLOCK) -> list[int]:
    """The same, sorted: fills of neighbouring blocks run side by side, so their order of arrival is not fixed."""
    return sorted(blocks_asked(proxy, bucket, key, size, block))


def seen_under(proxy: CountingProxy, bucket: str) -> list[Seen]:
    return [s for s in proxy.requests() if s.path == f"/{bucket}" or s.path.startswith(f"/{bucket}/")]


def blocks(size: int, block: int = BLOCK) -> list[int]:
    """Every block of an object of size bytes."""
    return list(range(-(-size // block)))


def block_files(cache_dir: Path) -> list[Path]:
    """Block files in a cache directory (writes in flight under tmp/ are not blocks yet)."""
    return [p for p in cache_dir.rglob("*") if p.is_file() and p.relative_to(cache_dir).parts[0] != "tmp"]


def wait_for_blocks(cache_dir: Path, count: int, timeout_s: float = 10.0) -> list[Path]:
    """Block files are written just after the bytes went out: wait until count of them are on disk."""
    deadline = time.monotonic() + timeout_s
    while len(files := block_files(cache_dir)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return files


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response: Any = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def get(client: Any, bucket: str, key: str, **kwargs: Any) -> tuple[bytes, str]:
    response = client.get_object(Bucket=bucket, Key=key, **kwargs)
    return response["Body"].read(), response["ETag"]


# ---- 1. a warm GET asks the origin for no bytes ---------------------------------------------------


def test_second_get_makes_no_origin_data_request(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                 origin_bucket: str) -> None:
    data = os.urandom(2 * BLOCK + 12345)  # three blocks, the last one short
    origin_s3.put_object(Bucket=origin_bucket, Key="warm.bin", Body=data)
    s3 = make_client(cached.url)
    body, etag = get(s3, origin_bucket, "warm.bin")
    assert body == data and etag == f'"{md5(data)}"'
    assert fetched(counting, origin_bucket, "warm.bin", len(data)) == blocks(len(data)) == [0, 1, 2]  # one GET per block
    for _ in range(3):
        assert get(s3, origin_bucket, "warm.bin") == (data, etag)
        assert s3.get_object(Bucket=origin_bucket, Key="warm.bin", Range="bytes=100-199")["Body"].read() == data[100:200]
    assert fetched(counting, origin_bucket, "warm.bin", len(data)) == [0, 1, 2]  # still only the first three


# ---- 2. a cold stampede: one origin GET per block ---------------------------------------------------


def _fetch_concurrently(url: str, clients: int, expected: bytes) -> list[tuple[int, int, bool]]:
    """clients GETs of url at once, each on its own connection; (status, bytes, every byte right) of each.

    Threads with http.client reading 4 MiB at a time and comparing with the expected bytes as they come (a
    memcmp): the clients cost little next to the worker they measure.
    """
    parts = urlsplit(url)
    ready = threading.Barrier(clients)
    results: list[tuple[int, int, bool]] = []

    def one() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
        try:
            conn.connect()
            ready.wait()  # every connection is open before the first request goes out
            conn.request("GET", parts.path)
            response = conn.getresponse()
            size, right = 0, True
            while chunk := response.read(4 * MIB):
                right = right and chunk == expected[size:size + len(chunk)]
                size += len(chunk)
            results.append((response.status, size, right))
        finally:
            conn.close()

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.slow
def test_concurrent_cold_gets_make_one_origin_get_per_block(moto_origin: MotoOrigin, origin_s3: Any,
                                                            origin_bucket: str, start_worker: StartWorker) -> None:
    size = 40 * MIB
    data = os.urandom(size)
    origin_s3.put_object(Bucket=origin_bucket, Key="big.bin", Body=data)
    # A slow origin (0.2 s a request) keeps every block in flight while all 64 readers arrive.
    slow = CountingProxy(moto_origin.port, latency_s=0.2).start()
    try:
        w = start_worker(slow.url)
        results = _fetch_concurrently(f"{w.url}/{origin_bucket}/big.bin", 64, data)
        assert len(results) == 64
        assert set(results) == {(200, size, True)}  # every client got every byte right
        assert fetched(slow, origin_bucket, "big.bin", size) == blocks(size) == list(range(10))  # one GET per block
        heads = [s for s in slow.requests() if s.method == "HEAD" and s.path == f"/{origin_bucket}/big.bin"]
        assert heads == []  # and no HEAD: the 64 cold readers share block 0's GET, whose answer brought the metadata
    finally:
        slow.stop()


# ---- 3. ranged GETs fetch only the blocks they touch ----------------------------------------------


def test_ranged_gets_fetch_only_the_blocks_they_touch(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                      origin_bucket: str) -> None:
    size = 3 * BLOCK + MIB  # blocks 0-2 full, block 3 of 1 MiB
    data = os.urandom(size)
    origin_s3.put_object(Bucket=origin_bucket, Key="ranged.bin", Body=data)
    s3 = make_client(cached.url)

    def ranged(header: str) -> bytes:
        response = s3.get_object(Bucket=origin_bucket, Key="ranged.bin", Range=header)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 206
        body: bytes = response["Body"].read()
        return body

    # Inside block 1 only.
    assert ranged("bytes=5000000-5000099") == data[5000000:5000100]
    assert blocks_asked(counting, origin_bucket, "ranged.bin", size) == [1]
    # Across the end of block 1 into block 2: block 1 is cached, only block 2 is fetched.
    assert ranged(f"bytes={2 * BLOCK - 10}-{2 * BLOCK + 9}") == data[2 * BLOCK - 10:2 * BLOCK + 10]
    assert blocks_asked(counting, origin_bucket, "ranged.bin", size) == [1, 2]
    # A suffix range: the last block.
    assert ranged("bytes=-100") == data[-100:]
    assert blocks_asked(counting, origin_bucket, "ranged.bin", size) == [1, 2, 3]
    # Cached ranges cost nothing; block 0 was never touched, so never fetched.
    assert ranged(f"bytes={BLOCK}-{3 * BLOCK + 5}") == data[BLOCK:3 * BLOCK + 6]
    assert blocks_asked(counting, origin_bucket, "ranged.bin", size) == [1, 2, 3]
    # The first bytes: block 0, and nothing else.
    assert ranged("bytes=0-0") == data[:1]
    assert blocks_asked(counting, origin_bucket, "ranged.bin", size) == [1, 2, 3, 0]
    assert get(s3, origin_bucket, "ranged.bin")[0] == data  # the whole object now comes from the cache
    assert len(blocks_asked(counting, origin_bucket, "ranged.bin", size)) == 4


# ---- 4. a write through s3cache is seen at once ----------------------------------------------------


def test_put_through_s3cache_is_seen_at_once(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                             origin_bucket: str) -> None:
    s3 = make_client(cached.url)
    old, new = os.urandom(BLOCK + 100), os.urandom(BLOCK + 100)  # same size: only the ETag tells them apart
    old_etag = s3.put_object(Bucket=origin_bucket, Key="k", Body=old)["ETag"]
    assert get(s3, origin_bucket, "k") == (old, old_etag)  # cached: metadata and both blocks
    assert get(s3, origin_bucket, "k") == (old, old_etag)
    new_etag = s3.put_object(Bucket=origin_bucket, Key="k", Body=new)["ETag"]
    assert new_etag == f'"{md5(new)}"' != old_etag
    assert get(s3, origin_bucket, "k") == (new, new_etag)  # at once, not after the metadata TTL
    assert s3.head_object(Bucket=origin_bucket, Key="k")["ETag"] == new_etag
    assert origin_s3.get_object(Bucket=origin_bucket, Key="k")["Body"].read() == new  # written through
    # Old blocks once, new blocks once: the new version's blocks are new blocks.
    assert fetched(counting, origin_bucket, "k", len(new)) == [0, 0, 1, 1]
    s3.delete_object(Bucket=origin_bucket, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=origin_bucket, Key="k")
    assert error_of(exc)[:2] == (404, "NoSuchKey")


def test_delete_objects_reaches_the_origin_as_one_request(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                          origin_bucket: str) -> None:
    s3 = make_client(cached.url)
    keys = [f"many/{i:03d}" for i in range(40)] + ["many/a&b <c>.txt"]
    for key in keys:
        origin_s3.put_object(Bucket=origin_bucket, Key=key, Body=key.encode())
    for key in keys[:3]:  # known to the cache: it must forget them
        assert get(s3, origin_bucket, key)[0] == key.encode()
    counting.reset()
    result = s3.delete_objects(Bucket=origin_bucket, Delete={
        "Objects": [{"Key": key} for key in keys] + [{"Key": "many/never-was"}, {"Key": "x", "VersionId": "v1"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys, "many/never-was"])
    assert [(e["Key"], e["Code"]) for e in result.get("Errors", [])] == [("x", "NoSuchVersion")]
    writes = [(r.method, r.query) for r in seen_under(counting, origin_bucket) if r.method not in ("GET", "HEAD")]
    assert writes == [("POST", "delete")], "one DeleteObjects at the origin, not a DELETE per key"
    assert "Contents" not in origin_s3.list_objects_v2(Bucket=origin_bucket, Prefix="many/")
    for key in keys[:3]:
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=origin_bucket, Key=key)
        assert error_of(exc)[:2] == (404, "NoSuchKey")


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_each_origin_client_carries_every_kind_of_request(client: str, counting: CountingProxy, origin_s3: Any,
                                                          origin_bucket: str, start_worker: StartWorker) -> None:
    """The suite runs on the default client; this walks the other one (and the default) through each
    request shape it sends: HEAD, ranged and whole GETs, a streamed PUT, multipart, a listing, errors, a
    DeleteObjects."""
    w = start_worker(counting.url, "--origin-client", client)
    s3 = make_client(w.url)
    data = os.urandom(BLOCK + 777)
    origin_s3.put_object(Bucket=origin_bucket, Key="read.bin", Body=data, Metadata={"who": "origin"})
    head = s3.head_object(Bucket=origin_bucket, Key="read.bin")
    assert head["ContentLength"] == len(data) and head["Metadata"] == {"who": "origin"}
    assert get(s3, origin_bucket, "read.bin")[0] == data
    part = s3.get_object(Bucket=origin_bucket, Key="read.bin", Range=f"bytes={BLOCK - 5}-{BLOCK + 5}")
    assert part["Body"].read() == data[BLOCK - 5:BLOCK + 6]
    written = os.urandom(300_000)
    s3.put_object(Bucket=origin_bucket, Key="put.bin", Body=written, ContentType="application/x-test")
    stored = origin_s3.get_object(Bucket=origin_bucket, Key="put.bin")
    assert stored["Body"].read() == written and stored["ContentType"] == "application/x-test"
    upload = s3.create_multipart_upload(Bucket=origin_bucket, Key="mp.bin")["UploadId"]
    pieces = [os.urandom(5 * MIB), os.urandom(1000)]
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=origin_bucket, Key="mp.bin", UploadId=upload,
                                                      PartNumber=n, Body=piece)["ETag"]}
             for n, piece in enumerate(pieces, start=1)]
    s3.complete_multipart_upload(Bucket=origin_bucket, Key="mp.bin", UploadId=upload,
                                 MultipartUpload={"Parts": parts})
    assert get(s3, origin_bucket, "mp.bin")[0] == b"".join(pieces)
    listed = s3.list_objects_v2(Bucket=origin_bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["mp.bin", "put.bin", "read.bin"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=origin_bucket, Key="absent")
    assert error_of(exc)[:2] == (404, "NoSuchKey")
    deleted = s3.delete_objects(Bucket=origin_bucket, Delete={"Objects": [{"Key": k} for k in
                                                                            ("mp.bin", "put.bin", "read.bin")]})
    assert len(deleted["Deleted"]) == 3
    assert "Contents" not in origin_s3.list_objects_v2(Bucket=origin_bucket)


def make_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it: (CA, certificate, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=s3cache test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "origin.key", "-out", "origin.csr",
            "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "origin.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "origin.pem", "-days", "2", "-extfile", "san.ext")
    return directory / "ca.pem", directory / "origin.pem", directory / "origin.key"


@pytest.fixture(scope="module")
def tls_origin(counting: CountingProxy) -> Iterator[tuple[str, Path]]:
    """The origin behind nginx terminating TLS with a certificate of a private CA: (https URL, CA file)."""
    directory = Path(tempfile.mkdtemp(prefix="s3cache-tls-"))  # outside pytest's 0700 tree: nginx's workers reach it
    directory.chmod(0o755)
    ca, cert, key = make_tls_material(directory)
    port = free_port()
    proc = start_nginx(directory, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 0;
        location / {{
            proxy_pass {counting.url};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}""")
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"https://127.0.0.1:{port}/", verify=ssl.create_default_context(cafile=ca), timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "nginx (TLS) did not start"
                time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", ca
    finally:
        stop_process(proc)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_https_origin_is_verified_against_the_configured_ca(client: str, tls_origin: tuple[str, Path],
                                                            origin_s3: Any, origin_bucket: str,
                                                            start_worker: StartWorker) -> None:
    url, ca = tls_origin
    data = os.urandom(BLOCK + 99)
    origin_s3.put_object(Bucket=origin_bucket, Key="tls.bin", Body=data)
    trusting = start_worker(url, "--origin-client", client, env={"AWS_CA_BUNDLE": str(ca)})
    s3 = make_client(trusting.url)
    assert get(s3, origin_bucket, "tls.bin")[0] == data
    s3.put_object(Bucket=origin_bucket, Key="up.bin", Body=data[:1000])
    assert origin_s3.get_object(Bucket=origin_bucket, Key="up.bin")["Body"].read() == data[:1000]
    # The system's store does not know this CA: the origin is refused, and the client is told why.
    doubting = start_worker(url, "--origin-client", client, env={"AWS_CA_BUNDLE": ""})
    r = httpx.get(f"{doubting.url}/{origin_bucket}/tls.bin", timeout=30)
    assert r.status_code == 503 and b"<Code>ServiceUnavailable</Code>" in r.content, r.text
    assert url.encode() in r.content


def test_an_unreadable_ca_bundle_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "proxy.cli.main", "serve", "--port", "0", "--origin", "https://127.0.0.1:9",
                           "--data", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "c")],
                          env={**os.environ, "AWS_CA_BUNDLE": str(tmp_path / "missing.pem")},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "AWS_CA_BUNDLE" in proc.stderr and "missing.pem" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_prometheus_metrics_count_requests_bytes_hits_and_origin_fetches(counting: CountingProxy, origin_s3: Any,
                                                                         origin_bucket: str,
                                                                         start_worker: StartWorker) -> None:
    capacity = 64 * MIB
    w = start_worker(counting.url, capacity=str(capacity))
    s3 = make_client(w.url)
    data = os.urandom(2 * BLOCK + 5)  # three blocks
    origin_s3.put_object(Bucket=origin_bucket, Key="m.bin", Body=data)
    assert get(s3, origin_bucket, "m.bin")[0] == data  # cold: three misses, three origin fetches
    assert get(s3, origin_bucket, "m.bin")[0] == data  # warm: three hits
    with pytest.raises(ClientError):
        s3.get_object(Bucket=origin_bucket, Key="absent")
    deadline = time.monotonic() + 5  # a request is counted just after its last byte went out
    while (m := scrape(w.url)).get(("s3cache_requests_total", (("operation", "GetObject"), ("status", "404")))) != 1:
        assert time.monotonic() < deadline, m
        time.sleep(0.05)
    get_ok = ("s3cache_requests_total", (("operation", "GetObject"), ("status", "200")))
    assert m[get_ok] == 2
    assert m[("s3cache_response_bytes_total", (("operation", "GetObject"),))] >= 2 * len(data)
    assert m[("s3cache_request_duration_seconds_count", (("operation", "GetObject"),))] == 3
    assert m[("s3cache_request_duration_seconds_bucket", (("le", "+Inf"), ("operation", "GetObject")))] == 3
    # Six block reads: the cold read misses block 0, and blocks 1 and 2 too unless read-ahead has landed them first.
    hits, misses = m[("s3cache_cache_hits_total", ())], m[("s3cache_cache_misses_total", ())]
    assert hits + misses == 6 and 1 <= misses <= 3, (hits, misses)
    assert m[("s3cache_origin_block_fetches_total", ())] == 3
    assert m[("s3cache_cache_blocks", ())] == 3 and m[("s3cache_cache_capacity_bytes", ())] == capacity
    assert len(data) < m[("s3cache_cache_used_bytes", ())] < len(data) + 3 * 4096  # the data and three headers
    assert len(counting.object_gets(f"/{origin_bucket}/m.bin")) == 3


# ---- 5. a write at the origin shows after the metadata TTL ----------------------------------------


def test_change_at_the_origin_shows_after_the_metadata_ttl(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                            origin_bucket: str) -> None:
    s3 = make_client(cached.url)
    old, new = b"old bytes " * 1000, b"NEW BYTES " * 1000
    origin_s3.put_object(Bucket=origin_bucket, Key="k", Body=old)
    asked = time.monotonic()  # s3cache learns the metadata between these two instants
    assert get(s3, origin_bucket, "k") == (old, f'"{md5(old)}"')
    learned = time.monotonic()
    origin_s3.put_object(Bucket=origin_bucket, Key="k", Body=new)  # behind s3cache's back
    assert get(s3, origin_bucket, "k") == (old, f'"{md5(old)}"')
    assert s3.head_object(Bucket=origin_bucket, Key="k")["ETag"] == f'"{md5(old)}"'
    assert time.monotonic() - asked < TTL_S, "too slow to observe the TTL window"
    time.sleep(max(0.0, learned + TTL_S + 0.1 - time.monotonic()))
    assert get(s3, origin_bucket, "k") == (new, f'"{md5(new)}"')
    assert s3.head_object(Bucket=origin_bucket, Key="k")["ETag"] == f'"{md5(new)}"'
    assert blocks_asked(counting, origin_bucket, "k", len(new)) == [0, 0]  # one GET per version


# ---- 6. a restart keeps the cache ------------------------------------------------------------------


def test_restart_keeps_the_cache(counting: CountingProxy, origin_s3: Any, origin_bucket: str,
                                 start_worker: StartWorker, tmp_path: Path) -> None:
    cache_dir = tmp_path / "kept-blocks"
    data = os.urandom(2 * BLOCK + 1)
    origin_s3.put_object(Bucket=origin_bucket, Key="kept.bin", Body=data)
    first = start_worker(counting.url, cache_dir=cache_dir)
    assert get(make_client(first.url), origin_bucket, "kept.bin")[0] == data
    assert len(wait_for_blocks(cache_dir, 3)) == 3
    first.stop()
    before = len(seen_under(counting, origin_bucket))
    second = start_worker(counting.url, cache_dir=cache_dir)
    assert get(make_client(second.url), origin_bucket, "kept.bin")[0] == data
    after = seen_under(counting, origin_bucket)[before:]
    # One origin request, for the metadata: the cold read's GET of block 0 (dropped at once, the block is on disk);
    # blocks 1 and 2 come from disk too.
    assert [(s.method, s.path) for s in after] == [("GET", f"/{origin_bucket}/kept.bin")]


# ---- 7. capacity holds, objects larger than the cache are still served -----------------------------


@pytest.mark.slow
def test_capacity_bounds_the_blocks_on_disk(counting: CountingProxy, origin_s3: Any, origin_bucket: str,
                                            start_worker: StartWorker, tmp_path: Path) -> None:
    blocks_held = 4
    block = MIB
    capacity = blocks_held * (block + 1024)  # room for 4 blocks and their headers, not for 5
    cache_dir = tmp_path / "small-cache"
    w = start_worker(counting.url, cache_dir=cache_dir, block_size="1M", capacity=str(capacity))
    s3 = make_client(w.url)
    objects = {f"obj-{i}": os.urandom(3 * block) for i in range(3)}  # whole blocks only: 4 fit, and never a 5th
    objects["large"] = os.urandom(10 * block)  # larger than the whole cache
    for key, data in objects.items():
        origin_s3.put_object(Bucket=origin_bucket, Key=key, Body=data)

    most = [0]
    stop = threading.Event()

    def watch() -> None:  # sample the disk while reading: the bound must hold throughout, not just at the end
        while not stop.is_set():
            # A directory walk is not atomic: a block evicted from a directory already walked and its successor
            # written into one walked later would both be counted. Files still there after the walk all existed
            # together at its end, so only those count.
            seen = block_files(cache_dir)
            most[0] = max(most[0], sum(p.exists() for p in seen))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(2):
            for key, data in objects.items():
                assert get(s3, origin_bucket, key)[0] == data
            large = objects["large"]
            piece = s3.get_object(Bucket=origin_bucket, Key="large", Range="bytes=5000000-7000000")["Body"].read()
            assert piece == large[5000000:7000001]
    finally:
        stop.set()
        watcher.join()
    time.sleep(0.2)  # the last block writes
    on_disk = block_files(cache_dir)
    assert 0 < most[0] <= blocks_held
    assert 0 < len(on_disk) <= blocks_held
    assert sum(p.stat().st_size for p in on_disk) <= capacity
    total_blocks = sum(-(-len(d) // block) for d in objects.values())
    assert total_blocks > blocks_held
    # Everything was read twice; the second pass went back to the origin for what had been evicted.
    origin_reads = sum(len(blocks_asked(counting, origin_bucket, key, len(data), block))
                       for key, data in objects.items())
    assert origin_reads > total_blocks


# ---- 8. a corrupt block is detected, dropped and fetched again ------------------------------------


def test_corrupt_block_is_refetched(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                    origin_bucket: str) -> None:
    data = os.urandom(BLOCK + 5000)
    etag = origin_s3.put_object(Bucket=origin_bucket, Key="c.bin", Body=data)["ETag"].strip('"')
    s3 = make_client(cached.url)
    assert get(s3, origin_bucket, "c.bin")[0] == data
    cache_dir = cached.workdir / "blocks"
    path = cache_dir / (bid := block_id(origin_bucket, "c.bin", etag, 0, BLOCK))[:2] / bid
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    raw = path.read_bytes()
    header = decode_header(raw)
    assert header.data_len == BLOCK and raw[header.size:] == data[:BLOCK]
    offset = header.size + 3 * PAGE_BYTES + 17  # a byte in the data part, page 3
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes([raw[offset] ^ 0xFF]))
    assert fetched(counting, origin_bucket, "c.bin", len(data)) == [0, 1]

    assert get(s3, origin_bucket, "c.bin")[0] == data  # detected on read, fetched again, served right
    assert fetched(counting, origin_bucket, "c.bin", len(data)) == [0, 0, 1]
    assert f"block {bid} is corrupt" in cached.log()
    deadline = time.monotonic() + 10  # the refetched block is cached again, intact
    while (not path.exists() or path.read_bytes() != raw) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.read_bytes() == raw
    assert get(s3, origin_bucket, "c.bin")[0] == data
    assert len(blocks_asked(counting, origin_bucket, "c.bin", len(data))) == 3

    # A ranged read that lands on a corrupt page notices too.
    with open(path, "r+b") as fh:
        fh.seek(header.size + 10)
        fh.write(bytes([raw[header.size + 10] ^ 0x01]))
    assert s3.get_object(Bucket=origin_bucket, Key="c.bin", Range="bytes=0-99")["Body"].read() == data[:100]
    assert len(blocks_asked(counting, origin_bucket, "c.bin", len(data))) == 4


# ---- 9. an origin that is down --------------------------------------------------------------------


def test_origin_down_is_a_clear_503_and_the_worker_stays_up(moto_origin: MotoOrigin, origin_s3: Any,
                                                            origin_bucket: str, start_worker: StartWorker) -> None:
    # The worker's origin is a proxy in front of moto: stopping it closes the port and cuts every connection,
    # which is all a worker can see of an origin that went down; starting it again brings the origin back.
    origin = CountingProxy(moto_origin.port).start()
    try:
        # One retry of a failed origin request (not three) keeps this test short; boto3 retries nothing.
        w = start_worker(origin.url, metadata_ttl=60, env={"S3CACHE_ORIGIN_RETRIES": "1"})
        s3 = make_client(w.url, retries={"total_max_attempts": 1})
        origin_s3.put_object(Bucket=origin_bucket, Key="warm", Body=b"cached before the outage")
        origin_s3.put_object(Bucket=origin_bucket, Key="cold", Body=b"never read before the outage")
        assert get(s3, origin_bucket, "warm")[0] == b"cached before the outage"
        origin.stop()

        for call in (lambda: s3.get_object(Bucket=origin_bucket, Key="cold"),
                     lambda: s3.put_object(Bucket=origin_bucket, Key="new", Body=b"x"),
                     lambda: s3.list_objects_v2(Bucket=origin_bucket),
                     lambda: s3.list_buckets()):
            with pytest.raises(ClientError) as exc:
                call()
            status, code, message = error_of(exc)
            assert (status, code) == (503, "ServiceUnavailable")
            assert f"The origin {origin.url} is unreachable" in message, message
        head = httpx.head(f"{w.url}/{origin_bucket}/cold")
        assert head.status_code == 503 and head.content == b""
        assert httpx.get(f"{w.url}/_s3cache/healthz").status_code == 200
        assert httpx.get(f"{w.url}/_s3cache/readyz").status_code == 503
        # What is cached (bytes, and metadata within its TTL) is still served.
        assert get(s3, origin_bucket, "warm")[0] == b"cached before the outage"
        assert w.proc is not None and w.proc.poll() is None

        origin.start()  # back, on the same port
        assert httpx.get(f"{w.url}/_s3cache/readyz").status_code == 200
        assert get(s3, origin_bucket, "cold")[0] == b"never read before the outage"
        s3.put_object(Bucket=origin_bucket, Key="after", Body=b"served again")
        assert get(s3, origin_bucket, "after")[0] == b"served again"
        assert origin_s3.get_object(Bucket=origin_bucket, Key="after")["Body"].read() == b"served again"
    finally:
        origin.stop()


# ---- 10. mounts: a prefix of an origin bucket read-only, a local directory read-write -------------


def test_mounts_prefix_read_only_and_file(counting: CountingProxy, origin_s3: Any, origin_bucket: str,
                                          start_worker: StartWorker, tmp_path: Path) -> None:
    scratch_dir = tmp_path / "scratch-dir"
    w = start_worker(counting.url, "--mount", f"data=s3://{origin_bucket}/some/prefix,ro",
                     "--mount", f"scratch=file://{scratch_dir}")
    s3 = make_client(w.url)
    inside = {"x": b"x under the prefix", "sub/y": b"y deeper"}
    for key, body in inside.items():
        origin_s3.put_object(Bucket=origin_bucket, Key=f"some/prefix/{key}", Body=body)
    origin_s3.put_object(Bucket=origin_bucket, Key="other/z", Body=b"outside the mount")
    origin_s3.put_object(Bucket=origin_bucket, Key="some/prefixed", Body=b"not under some/prefix/")

    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"data", "scratch"} <= names
    # Keys map under the prefix.
    assert get(s3, "data", "x")[0] == inside["x"]
    assert blocks_asked(counting, origin_bucket, "some/prefix/x", len(inside["x"])) == [0]
    assert s3.head_object(Bucket="data", Key="sub/y")["ContentLength"] == len(inside["sub/y"])
    listed = s3.list_objects_v2(Bucket="data")
    assert [o["Key"] for o in listed["Contents"]] == ["sub/y", "x"]
    rolled = s3.list_objects_v2(Bucket="data", Delimiter="/")
    assert [o["Key"] for o in rolled["Contents"]] == ["x"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["sub/"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="sub/")["Contents"]] == ["sub/y"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="data", Key="other/z")
    assert error_of(exc)[:2] == (404, "NoSuchKey")

    # The read-only mount refuses every write, and the origin hears of none.
    before = len(seen_under(counting, origin_bucket))
    writes = [lambda: s3.put_object(Bucket="data", Key="x", Body=b"overwrite"),
              lambda: s3.put_object(Bucket="data", Key="new", Body=b"new"),
              lambda: s3.delete_object(Bucket="data", Key="x"),
              lambda: s3.copy_object(Bucket="data", Key="copy", CopySource={"Bucket": "data", "Key": "x"}),
              lambda: s3.put_object_tagging(Bucket="data", Key="x", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
              lambda: s3.create_multipart_upload(Bucket="data", Key="mp"),
              lambda: s3.delete_bucket(Bucket="data")]
    for write in writes:
        with pytest.raises(ClientError) as exc:
            write()
        assert error_of(exc)[:2] == (403, "AccessDenied")
    refusal = s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "x"}]})  # judged key by key
    assert [(e["Key"], e["Code"]) for e in refusal["Errors"]] == [("x", "AccessDenied")] and "Deleted" not in refusal
    assert seen_under(counting, origin_bucket)[before:] == []
    origin_keys = [o["Key"] for o in origin_s3.list_objects_v2(Bucket=origin_bucket)["Contents"]]
    assert origin_keys == ["other/z", "some/prefix/sub/y", "some/prefix/x", "some/prefixed"]
    assert origin_s3.get_object(Bucket=origin_bucket, Key="some/prefix/x")["Body"].read() == inside["x"]

    # The file:// mount is read-write and lands files in its directory.
    s3.put_object(Bucket="scratch", Key="out/result.txt", Body=b"written locally")
    assert (scratch_dir / "out" / "result.txt").read_bytes() == b"written locally"
    assert get(s3, "scratch", "out/result.txt")[0] == b"written locally"
    s3.copy_object(Bucket="scratch", Key="copied-x", CopySource={"Bucket": "data", "Key": "x"})  # across stores
    assert (scratch_dir / "copied-x").read_bytes() == inside["x"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="scratch")["Contents"]] == ["copied-x", "out/result.txt"]
    s3.delete_object(Bucket="scratch", Key="out/result.txt")
    assert not (scratch_dir / "out" / "result.txt").exists()
    assert [s for s in seen_under(counting, "scratch")] == []  # never sent to the origin


# ---- 11. origin errors keep their code --------------------------------------------------------------


def test_origin_errors_keep_their_code(cached: Worker, origin_bucket: str) -> None:
    s3 = make_client(cached.url)
    missing_bucket = f"m-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=origin_bucket, Key="no/such/key")
    assert error_of(exc)[:2] == (404, "NoSuchKey")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=missing_bucket, Key="k")
    assert error_of(exc)[:2] == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=missing_bucket)
    assert error_of(exc)[:2] == (404, "NoSuchBucket")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=origin_bucket, Key="dst", CopySource={"Bucket": missing_bucket, "Key": "k"})
    assert error_of(exc)[:2] == (404, "NoSuchBucket")
    for target in (f"/{origin_bucket}/no/such/key", f"/{missing_bucket}/k"):
        head = httpx.head(cached.url + target)
        assert head.status_code == 404 and head.content == b""
    raw = httpx.get(f"{cached.url}/{missing_bucket}/k")
    assert raw.status_code == 404 and b"<Code>NoSuchBucket</Code>" in raw.content
    assert f"<BucketName>{missing_bucket}</BucketName>".encode() in raw.content


def test_dot_segment_keys_reach_the_origin_as_they_are(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                       origin_bucket: str) -> None:
    """'.' and '..' are ordinary characters of S3 keys: never resolved as a path on the way to the origin."""
    s3 = make_client(cached.url)
    keys = ["a/../escape", "x/./y", "dots/..", "./lead"]
    for key in keys:
        s3.put_object(Bucket=origin_bucket, Key=key, Body=key.encode())
    assert sorted(o["Key"] for o in origin_s3.list_objects_v2(Bucket=origin_bucket)["Contents"]) == sorted(keys)
    for key in keys:
        assert get(s3, origin_bucket, key)[0] == key.encode()
        assert origin_s3.get_object(Bucket=origin_bucket, Key=key)["Body"].read() == key.encode()
    assert {s.path for s in counting.requests() if s.method == "PUT" and s.path.startswith(f"/{origin_bucket}/")} \
        == {f"/{origin_bucket}/{key}" for key in keys}
    for key in keys:
        s3.delete_object(Bucket=origin_bucket, Key=key)
    assert "Contents" not in origin_s3.list_objects_v2(Bucket=origin_bucket)
    origin_s3.head_bucket(Bucket=origin_bucket)  # "dots/.." did not become a DeleteBucket


def test_tagging_through_the_cache_is_seen_at_once(cached: Worker, origin_s3: Any, origin_bucket: str) -> None:
    s3 = make_client(cached.url)
    origin_s3.put_object(Bucket=origin_bucket, Key="t", Body=b"tagged")
    assert "TagCount" not in s3.get_object(Bucket=origin_bucket, Key="t")  # metadata now cached
    tags = [{"Key": "team", "Value": "ml ops"}, {"Key": "stage", "Value": "raw-2024"}]
    s3.put_object_tagging(Bucket=origin_bucket, Key="t", Tagging={"TagSet": tags})
    assert s3.get_object(Bucket=origin_bucket, Key="t")["TagCount"] == 2  # not after the TTL: at once
    assert s3.head_object(Bucket=origin_bucket, Key="t")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2"
    assert sorted(s3.get_object_tagging(Bucket=origin_bucket, Key="t")["TagSet"], key=lambda t: t["Key"]) == \
        sorted(tags, key=lambda t: t["Key"])
    assert origin_s3.get_object_tagging(Bucket=origin_bucket, Key="t")["TagSet"] != []
    s3.delete_object_tagging(Bucket=origin_bucket, Key="t")
    assert "TagCount" not in s3.get_object(Bucket=origin_bucket, Key="t")
    assert origin_s3.get_object_tagging(Bucket=origin_bucket, Key="t")["TagSet"] == []


def test_load_warms_a_prefix_so_reads_need_no_origin(cached: Worker, counting: CountingProxy, origin_s3: Any,
                                                     origin_bucket: str) -> None:
    """`s3cache load s3://bucket/prefix`: every block of every object under the prefix fetched once."""
    objects = {f"set/part-{i}.bin": os.urandom(size) for i, size in enumerate((10, BLOCK + 1, 3 * MIB, 0))}
    for key, data in objects.items():
        origin_s3.put_object(Bucket=origin_bucket, Key=key, Body=data)
    origin_s3.put_object(Bucket=origin_bucket, Key="elsewhere.bin", Body=b"not under the prefix")
    done = subprocess.run([sys.executable, "-m", "proxy.cli.main", "load", f"s3://{origin_bucket}/set/",
                           "--endpoint", cached.url, "--concurrency", "3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    total = sum(len(data) for data in objects.values())
    assert done.stdout.startswith(f"loaded 3 objects, {total} bytes of s3://{origin_bucket}/set/ in ")
    assert done.stdout.strip().endswith("; 1 objects (0 bytes) already cached, skipped")  # empty: no block to fetch
    assert "4/4 objects, 1 cached, 0 failed" in done.stderr  # the progress bar
    for key, data in objects.items():
        if data:
            assert fetched(counting, origin_bucket, key, len(data)) == blocks(len(data))
    assert data_gets(counting, origin_bucket, "elsewhere.bin") == []
    before = len(counting.requests())
    s3 = make_client(cached.url)
    for key, data in objects.items():
        assert s3.get_object(Bucket=origin_bucket, Key=key)["Body"].read() == data
    assert [s for s in counting.requests()[before:] if s.method == "GET"] == []  # warm: no origin GET at all
