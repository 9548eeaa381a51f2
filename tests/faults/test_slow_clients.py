"""Connections that never finish a request are closed, and they do not stand in the way of those that do.

A worker with 3-second head and idle timeouts: 200 connections dribbling a request head one byte a second and
50 that send nothing are all closed within the timeout (plus a second's grace), while a normal GET on a new
connection is answered at once; past ``server.max_connections`` open connections requests are answered 503.
"""

from __future__ import annotations

import selectors
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig.processes import Worker
from tests.conftest import make_client

TIMEOUT_S = 3.0


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    env = {"S3CACHE_SERVER_HEADER_TIMEOUT_S": str(TIMEOUT_S), "S3CACHE_SERVER_KEEPALIVE_IDLE_S": str(TIMEOUT_S),
           "S3CACHE_SERVER_MAX_CONNECTIONS": "400"}
    w = Worker(["--data", str(tmp_path / "data")], tmp_path, env=env).start()
    yield w
    w.stop()


def _connect(worker: Worker, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", worker.port))
        sock.setblocking(False)
        socks.append(sock)
    return socks


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset: closed as well
        return True


def test_half_open_connections_are_closed_and_do_not_block_others(worker: Worker) -> None:
    s3 = make_client(worker.url)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"answered")
    head = f"GET /{bucket}/k HTTP/1.1\r\nHost: 127.0.0.1\r\nx-slow: {'z' * 100}\r\n\r\n".encode()
    dribblers = _connect(worker, 200)
    silent = _connect(worker, 50)
    opened = time.monotonic()
    closed_at: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()
    for sock in dribblers + silent:
        selector.register(sock, selectors.EVENT_READ)
    sent = 0
    next_byte = opened
    answered_in = None
    while len(closed_at) < len(dribblers) + len(silent) and time.monotonic() - opened < TIMEOUT_S + 5:
        now = time.monotonic()
        if now >= next_byte:  # one more byte of the head on every dribbling connection still open
            for sock in dribblers:
                if sock not in closed_at:
                    try:
                        sock.send(head[sent:sent + 1])
                    except OSError:
                        pass
            sent += 1
            next_byte += 1.0
        if answered_in is None and now - opened > 1.5:  # every half-open connection is in by now
            started = time.monotonic()
            response = httpx.get(f"{worker.url}/{bucket}/k", timeout=5)
            answered_in = time.monotonic() - started
            assert response.status_code == 200 and response.content == b"answered"
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if _closed_by_peer(sock):
                closed_at[sock] = time.monotonic() - opened
                selector.unregister(sock)
    for sock in dribblers + silent:
        sock.close()
    assert answered_in is not None and answered_in < 1.0, f"a normal GET took {answered_in}s"
    assert len(closed_at) == len(dribblers) + len(silent), f"{len(dribblers) + len(silent) - len(closed_at)} " \
        "connections still open"
    assert sent < len(head), "a dribbled head completed: the test proves nothing"
    assert max(closed_at.values()) < TIMEOUT_S + 1.5
    assert min(closed_at.values()) > TIMEOUT_S - 0.5  # closed by the timeout, not at once
    assert httpx.get(f"{worker.url}/{bucket}/k").status_code == 200


def test_connections_past_the_cap_are_answered_503(tmp_path: Path) -> None:
    w = Worker(["--data", str(tmp_path / "data")], tmp_path, env={"S3CACHE_SERVER_MAX_CONNECTIONS": "20"}).start()
    try:
        held = _connect(w, 25)
        time.sleep(0.3)
        assert httpx.get(f"{w.url}/_s3cache/healthz").status_code == 503
        for sock in held:
            sock.close()
        time.sleep(0.3)
        assert httpx.get(f"{w.url}/_s3cache/healthz").status_code == 200
    finally:
        w.stop()
