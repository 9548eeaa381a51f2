"""A worker stopped with SIGTERM drains: readyz answers 503 first, a download in flight through nginx finishes whole.

A real worker over a directory behind the shipped nginx configuration; the client reads a 200 MiB object slowly,
so the stream is still going when the worker is told to stop.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from rig.nginx import Nginx
from rig.processes import Worker

SIZE = 200 << 20


@pytest.mark.slow
def test_sigterm_drains_readyz_first_and_a_download_in_flight_completes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "drain").mkdir(parents=True)
    digest = hashlib.md5()
    with open(data_dir / "drain" / "big.bin", "wb") as fh:
        for _ in range(SIZE >> 20):
            piece = os.urandom(1 << 20)
            digest.update(piece)
            fh.write(piece)
    worker = Worker(["--data", str(data_dir)], tmp_path,
                    env={"S3CACHE_SERVER_DRAIN_DELAY_S": "1.5", "S3CACHE_SERVER_DRAIN_S": "60"}).start()
    nginx = Nginx([f"127.0.0.1:{worker.port}"])  # in a directory of its own: nginx workers run unprivileged
    try:
        nginx.start()
        got = hashlib.md5()
        received = 0
        with httpx.Client(timeout=60) as client, client.stream("GET", f"{nginx.url}/drain/big.bin") as response:
            assert response.status_code == 200
            chunks = response.iter_raw(1 << 20)
            for _ in range(20):  # 20 MiB read, the rest still to come
                chunk = next(chunks)
                got.update(chunk)
                received += len(chunk)
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            ready = httpx.get(f"{worker.url}/_s3cache/readyz", timeout=5)
            assert ready.status_code == 503 and ready.json() == {"status": "draining"}
            assert httpx.get(f"{worker.url}/_s3cache/healthz", timeout=5).status_code == 200  # still serving
            for chunk in chunks:
                got.update(chunk)
                received += len(chunk)
                time.sleep(0.002)  # a slow reader: the stream outlives the drain delay
        assert received == SIZE and got.hexdigest() == digest.hexdigest()
        # It exits once the download is done (uvicorn re-raises the SIGTERM it caught, so that is the status).
        assert worker.proc.wait(timeout=30) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{worker.url}/_s3cache/healthz", timeout=2)
        assert "draining" in worker.log()
    finally:
        nginx.stop()
        worker.stop()
