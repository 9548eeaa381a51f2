"""A real S3 origin for tests and benchmarks: moto's server mode, seen through a counting proxy.

The proxy is a real HTTP server between s3cache and moto: it records every request the origin
receives (method, path, query, Range, If-Match) so tests can count origin traffic, and can make the origin look
remote: a first-byte delay on every request, and a cap on each connection's rate of response bytes
(a token bucket per client connection, as a remote store's per-connection throughput limits one stream).
It can also make the origin faulty (``faults``, a rig.faults.Faults plan: S3 errors, resets and short bodies on
a fraction of object GETs). It streams bodies both ways without holding them.

``ProxyProcess`` runs that proxy in a child process of its own, so its copying threads never share a GIL
with a load client (the benchmarks' slowed origin):

    python -m rig.origin proxy UPSTREAM_PORT LATENCY_S [RATE_BYTES_S]   (the proxy process; ProxyProcess starts it)
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from rig.faults import Faults
from rig.processes import ROOT, free_port, stop_process, wait_http

ORIGIN_ENV = {"AWS_ACCESS_KEY_ID": "origin-key", "AWS_SECRET_ACCESS_KEY": "origin-secret"}  # s3cache's origin keys
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # decoded, without the query
    query: str
    range: str | None
    if_match: str | None = None
    access_key: str | None = None  # the SigV4 Credential the request was signed with (None: unsigned)
    at: float = 0.0  # when the origin received it (time.time())

    @property
    def is_object_get(self) -> bool:
        """A GET that reads object bytes (not a listing or sub-resource)."""
        return self.method == "GET" and self.path.count("/") >= 2 and self.query in ("", "x-id=GetObject")

    @property
    def is_list(self) -> bool:
        """A bucket listing: a GET of the bucket itself that asks no sub-resource (?location, ?acl, ...)."""
        if self.method != "GET" or self.path.strip("/").count("/") or not self.path.strip("/"):
            return False
        names = {part.split("=", 1)[0] for part in self.query.split("&") if part}
        return names <= {"list-type", "prefix", "delimiter", "continuation-token", "start-after", "max-keys",
                         "encoding-type", "fetch-owner", "marker", "x-id"}

    @property
    def kind(self) -> str:
        """What the request was, for counting: get (object bytes), head, list or other."""
        if self.is_object_get:
            return "get"
        if self.method == "HEAD":
            return "head"
        return "list" if self.is_list else "other"


class TokenBucket:
    """Paces one connection's bytes to rate_bytes_s, letting burst bytes through at once (0: no cap)."""

    def __init__(self, rate_bytes_s: float, burst: int = 256 << 10) -> None:
        self.rate, self.burst = rate_bytes_s, burst
        self._free_at = 0.0  # when the bucket is next empty: time.monotonic() plus the bytes owed

    def take(self, size: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self._free_at = max(self._free_at, now - self.burst / self.rate) + size / self.rate
        if self._free_at > now:
            time.sleep(self._free_at - now)


def signed_by(authorization: str) -> str | None:
    """The access key of a SigV4 Authorization header (``... Credential=AKID/date/region/s3/aws4_request, ...``)."""
    _, found, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if found else None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # a stopped worker resets its pooled connections, and a fault plan resets the proxy's own
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class CountingProxy:
    server_class: ClassVar[type[ThreadingHTTPServer]] = _QuietServer

    upstream_port: int
    latency_s: float = 0.0
    rate_bytes_s: float = 0.0  # per client connection, response bytes; 0 = no cap
    faults: Faults = field(default_factory=Faults)  # none unless a test sets a plan
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _clients: set[socket.socket] = field(default_factory=set)  # open client connections, cut by stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CountingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # a chunked answer ends in a small write: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.bucket = TokenBucket(proxy.rate_bytes_s)  # one per connection, kept across its requests
                with proxy._lock:
                    proxy._clients.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._clients.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _forward(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(self.command, unquote(parts.path), parts.query, self.headers.get("Range"),
                            self.headers.get("If-Match"), signed_by(self.headers.get("Authorization", "")), time.time())
                with proxy._lock:
                    proxy.seen.append(seen)
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                fault = proxy.faults.draw() if seen.is_object_get else None
                if fault == "error":
                    self._refuse()
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                length = self.headers.get("Content-Length")
                body = None
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._chunks()
                elif length:
                    body = self._fixed(int(length))
                upstream.request(self.command, self.path, body=body, headers=headers,
                                 encode_chunked=body is not None and length is None)
                response = upstream.getresponse()
                self.send_response(response.status)
                upstream_length = response.getheader("Content-Length")
                for name, value in response.getheaders():
                    if name.lower() not in _HOP:
                        self.send_header(name, value)
                chunked = upstream_length is None and self.command != "HEAD" and response.status not in (204, 304)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # a body to break: where it breaks (halfway), else never
                cut = int(upstream_length) // 2 if fault and upstream_length and response.status < 300 else -1
                sent = 0
                while self.command != "HEAD" and (data := response.read(1 << 16)):
                    if 0 <= cut < sent + len(data):
                        self.wfile.write(data[:cut - sent])
                        self._break(fault == "reset")
                        upstream.close()
                        return
                    sent += len(data)
                    self.bucket.take(len(data))
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                upstream.close()

            def _refuse(self) -> None:
                """An S3 error in place of the origin's answer (the request body, if any, left unread)."""
                status, body = proxy.faults.error()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def _break(self, reset: bool) -> None:
                """End the connection mid-body: with a reset (RST), or closed cleanly short of its length."""
                self.close_connection = True
                if reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()

            def _fixed(self, length: int):  # type: ignore[no-untyped-def]
                while length > 0:
                    data = self.rfile.read(min(length, 1 << 16))
                    if not data:
                        return
                    length -= len(data)
                    yield data

            def _chunks(self):  # type: ignore[no-untyped-def]
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    yield self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = self.server_class(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port and cut every open connection: to its clients the origin is gone. start() reopens it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def object_gets(self, key_path: str | None = None) -> list[Seen]:
        """Object-data GETs the origin received, optionally only those of /bucket/key."""
        return [s for s in self.requests() if s.is_object_get and (key_path is None or s.path == key_path)]

    def tally(self) -> dict[str, int]:
        """Requests the origin received by kind (get, head, list, other) and in all (total)."""
        counts = dict.fromkeys(("get", "head", "list", "other"), 0)
        for seen in self.requests():
            counts[seen.kind] += 1
        counts["total"] = sum(counts.values())
        return counts


@dataclass
class MotoOrigin:
    """moto's S3 server as a separate process on a free port."""

    workdir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoOrigin:
        self.port = self.port or free_port()
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        log = open(self.workdir / f"moto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT)
        wait_http(self.url + "/moto-api/", proc=self.proc, timeout_s=30)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class ProxyProcess:
    """CountingProxy in a child process, driven over its stdin: ``count``, ``tally``, ``reset``; EOF stops it."""

    def __init__(self, upstream_port: int, latency_s: float, rate_bytes_s: float = 0.0) -> None:
        self.upstream_port, self.latency_s, self.rate_bytes_s = upstream_port, latency_s, rate_bytes_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rig.origin", "proxy", str(self.upstream_port), str(self.latency_s),
             str(self.rate_bytes_s)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("port "):
            stop_process(self.proc)
            raise RuntimeError(f"the latency proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def _ask(self, command: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def counts(self) -> tuple[int, int]:
        """(object GETs, all requests) the origin received since the last reset."""
        gets, total = self._ask("count").split()
        return int(gets), int(total)

    def tally(self) -> dict[str, int]:
        """Requests the origin received since the last reset, by kind: get, head, list, other, total."""
        return {name: int(value) for name, value in json.loads(self._ask("tally")).items()}

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
        self.proc = None


class _ProxyServer(_QuietServer):
    # socketserver's listen backlog of 5 drops SYNs when many connections open at once: 1 s retransmit stalls.
    request_queue_size = 1024


class _RelayProxy(CountingProxy):
    server_class = _ProxyServer


def _proxy_main(upstream_port: int, latency_s: float, rate_bytes_s: float) -> None:
    proxy = _RelayProxy(upstream_port, latency_s=latency_s, rate_bytes_s=rate_bytes_s).start()
    print(f"port {proxy.port}", flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "count":
                print(len(proxy.object_gets()), len(proxy.requests()), flush=True)
            elif line.strip() == "tally":
                print(json.dumps(proxy.tally()), flush=True)
            elif line.strip() == "reset":
                proxy.reset()
                print("ok", flush=True)
    finally:
        proxy.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["proxy"]:
    _proxy_main(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
