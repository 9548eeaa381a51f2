"""Platform facts the design relies on, measured on this machine in one run, ratios side by side.

This module owns the measurements of the building blocks, not of s3cache: it imports nothing from
proxy/, cache/, conf/ or tests/, starts its own servers on free ports of 127.0.0.1, stops them by PID.

1. 4 KiB GET with wrk: nginx, a Starlette route, a raw ASGI app (uvicorn, uvloop + httptools, one
   process), the raw app with h11 and with the asyncio loop; req/s, latency, server CPU per request.
2. 64 MiB GET with wrk: nginx sendfile on/off, the raw app streaming 64 KiB / 1 MiB / 4 MiB chunks,
   Starlette's FileResponse; MB/s.
3. A 4 KiB read from the page cache inside asyncio: preadv(RWF_NOWAIT) inline, a run_in_executor
   thread hop, aiofiles open+read+close; microseconds per read.
4. Redis GET with redis.asyncio: one at a time and pipelined by 100, hiredis and pure-Python parser.

Results are printed and written to benchmarks/results/platform_facts-<date>.md with the machine.

    python benchmarks/platform_facts.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiofiles
import uvicorn
import uvloop
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import DefaultParser
from redis.utils import HIREDIS_AVAILABLE

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 4 << 10, 64 << 20
SMALL_CONNECTIONS, LARGE_CONNECTIONS = 32, 4
CHUNKS = (64 << 10, 1 << 20, 4 << 20)
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
NGINX_CONF = """worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{port_on}; root {data}; sendfile on; tcp_nopush on; }}
    server {{ listen 127.0.0.1:{port_off}; root {data}; sendfile off; }}
}}
"""

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class HttpRow:
    server: str
    rps: float
    mbps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_us_per_req: float
    errors: str


# ---------------------------------------------------------------- servers (the --serve child mode)


def raw_app(data: Path) -> Callable[[dict[str, Any], Any, Send], Awaitable[None]]:
    """A bare ASGI app: /small answers 4 KiB from memory, /stream/<chunk> streams the 64 MiB file."""
    small = (data / "4KiB.bin").read_bytes()
    fd = os.open(data / "64MiB.bin", os.O_RDONLY)

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["path"] == "/small":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"4096"), (b"content-type", b"application/octet-stream")]})
            await send({"type": "http.response.body", "body": small})
            return
        chunk = int(scope["path"].rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(LARGE).encode()), (b"content-type", b"application/octet-stream")]})
        for offset in range(0, LARGE, chunk):
            await send({"type": "http.response.body", "body": os.pread(fd, chunk, offset),
                        "more_body": offset + chunk < LARGE})

    return app


def starlette_app(data: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    small = (data / "4KiB.bin").read_bytes()

    async def small_route(request: Request) -> Response:
        return Response(small, media_type="application/octet-stream")

    async def file_route(request: Request) -> Response:
        return FileResponse(data / "64MiB.bin")

    return Starlette(routes=[Route("/small", small_route), Route("/file", file_route)])


def serve(kind: str, loop: str, http: str, port: int, data: Path) -> None:
    app = raw_app(data) if kind == "raw" else starlette_app(data)
    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http=http, ws="none", lifespan="off",
                log_level="warning", access_log=False)


# ---------------------------------------------------------------- process control


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], probe: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server {proc.args!r} exited with {proc.returncode}")
        try:
            probe()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one server we started, by its PID (nginx's master takes its worker with it)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def running(argv: list[str], probe: Callable[[], object]) -> Iterator[int]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(proc, probe)
        yield proc.pid
    finally:
        stop(proc)


def http_probe(url: str) -> Callable[[], object]:
    return lambda: urllib.request.urlopen(url, timeout=2).read()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its direct children (nginx's worker), from /proc."""
    pids = [str(pid)]
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        pids += Path(path).read_text().split()
    ticks = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- 1 and 2: HTTP with wrk


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, connections: int, seconds: int) -> dict[str, Any]:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url],
                         check=True, capture_output=True, text=True).stdout
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    requests = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not requests or not rps or len(latency) < 3:
        raise RuntimeError(f"wrk against {url} failed:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    errors = ", ".join(x for x in (f"non-2xx {bad.group(1)}" if bad else "", sock.group(1) if sock else "") if x)
    return {"requests": int(requests.group(1)), "rps": float(rps.group(1)), "errors": errors,
            "p50": _ms(latency["50"]), "p90": _ms(latency["90"]), "p99": _ms(latency["99"])}


def measure(label: str, pid: int, url: str, size: int, connections: int, seconds: int) -> HttpRow:
    wrk(url, connections, 1)  # warm-up: page cache, connections, code paths
    before = cpu_seconds(pid)
    m = wrk(url, connections, seconds)
    cpu = cpu_seconds(pid) - before
    print(f"  {label}: {m['rps']:,.0f} req/s", flush=True)
    return HttpRow(label, m["rps"], m["rps"] * size / 1e6, m["p50"], m["p90"], m["p99"],
                   cpu / max(m["requests"], 1) * 1e6, m["errors"])


def uvicorn_argv(kind: str, loop: str, http: str, port: int, data: Path) -> list[str]:
    return [sys.executable, __file__, "--serve", kind, "--loop", loop, "--http", http, "--port", str(port),
            "--data", str(data)]


def nginx_rows(work: Path, data: Path, seconds: int) -> tuple[list[HttpRow], list[HttpRow]]:
    port_on, port_off = free_port(), free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, data=data, port_on=port_on, port_off=port_off))
    (work / "logs").mkdir(exist_ok=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    base_on, base_off = f"http://127.0.0.1:{port_on}", f"http://127.0.0.1:{port_off}"
    with running([nginx, "-p", str(work), "-c", str(conf), "-g", "daemon off;"], http_probe(f"{base_on}/4KiB.bin")) as pid:
        small = [measure("nginx", pid, f"{base_on}/4KiB.bin", SMALL, SMALL_CONNECTIONS, seconds)]
        large = [measure("nginx sendfile on", pid, f"{base_on}/64MiB.bin", LARGE, LARGE_CONNECTIONS, seconds),
                 measure("nginx sendfile off", pid, f"{base_off}/64MiB.bin", LARGE, LARGE_CONNECTIONS, seconds)]
    return small, large


def uvicorn_rows(data: Path, seconds: int) -> tuple[list[HttpRow], list[HttpRow]]:
    small: list[HttpRow] = []
    large: list[HttpRow] = []
    variants = [("starlette", "uvloop", "httptools"), ("raw", "uvloop", "httptools"),
                ("raw", "uvloop", "h11"), ("raw", "asyncio", "httptools")]
    for kind, loop, http in variants:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with running(uvicorn_argv(kind, loop, http, port, data), http_probe(f"{base}/small")) as pid:
            label = f"{'Starlette route' if kind == 'starlette' else 'raw ASGI'}, {loop} + {http}"
            small.append(measure(label, pid, f"{base}/small", SMALL, SMALL_CONNECTIONS, seconds))
            if (loop, http) != ("uvloop", "httptools"):
                continue
            paths = {"Starlette FileResponse": "/file"} if kind == "starlette" else {
                f"raw ASGI, {chunk >> 10} KiB chunks": f"/stream/{chunk}" for chunk in CHUNKS}
            for name, path in paths.items():
                large.append(measure(name, pid, base + path, LARGE, LARGE_CONNECTIONS, seconds))
    return small, large


# ---------------------------------------------------------------- 3: a page-cache read inside asyncio


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def read_timings(path: Path, n: int) -> dict[str, list[float]]:
    """Per-read microseconds of each way to read 4 KiB at a random 4 KiB-aligned offset."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    buf = bytearray(SMALL)
    offsets = [random.Random(7).randrange(LARGE // SMALL) * SMALL for _ in range(n)]

    async def nowait(off: int) -> None:
        if os.preadv(fd, [buf], off, os.RWF_NOWAIT) != SMALL:
            raise RuntimeError("short read")

    async def inline(off: int) -> None:
        os.pread(fd, SMALL, off)

    async def executor(off: int) -> None:
        await loop.run_in_executor(None, os.pread, fd, SMALL, off)

    async def with_aiofiles(off: int) -> None:
        async with aiofiles.open(path, "rb") as f:
            await f.seek(off)
            await f.read(SMALL)

    ways = {"os.preadv RWF_NOWAIT, inline": nowait, "os.pread, inline (blocking)": inline,
            "run_in_executor(os.pread)": executor, "aiofiles open+seek+read+close": with_aiofiles}
    out: dict[str, list[float]] = {}
    try:
        for name, way in ways.items():
            for off in offsets[:200]:  # warm-up: executor threads, code paths
                await way(off)
            times = []
            for off in offsets:
                t = time.perf_counter_ns()
                await way(off)
                times.append((time.perf_counter_ns() - t) / 1000)
            out[name] = times
    finally:
        os.close(fd)
    return out


def read_rows(path: Path, n: int) -> list[tuple[str, str, float, float, float]]:
    with open(path, "rb") as f:  # into the page cache
        while f.read(1 << 20):
            pass
    rows = []
    for loop_name, factory in LOOPS.items():
        with asyncio.Runner(loop_factory=factory) as runner:
            for name, times in runner.run(read_timings(path, n)).items():
                rows.append((name, loop_name, pct(times, 0.5), pct(times, 0.9), pct(times, 0.99)))
    return rows


# ---------------------------------------------------------------- 4: Redis


async def redis_timings(port: int, parser: type, singles: int, batches: int) -> tuple[str, dict[str, list[float]]]:
    """Per-call microseconds of GET one at a time, and of pipelines of 100 GETs (per batch)."""
    pool = ConnectionPool(host="127.0.0.1", port=port, parser_class=parser)
    client = Redis(connection_pool=pool)
    await client.set("fact", os.urandom(100))

    async def batch() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(100):
                pipe.get("fact")
            await pipe.execute()

    out: dict[str, list[float]] = {"one at a time": [], "pipelined by 100": []}
    for mode, call, count in (("one at a time", lambda: client.get("fact"), singles),
                              ("pipelined by 100", batch, batches)):
        for _ in range(min(count, 200)):
            await call()
        for _ in range(count):
            t = time.perf_counter_ns()
            await call()
            out[mode].append((time.perf_counter_ns() - t) / 1000)
    connections = getattr(pool, "_available_connections", [])
    used = type(connections[0]._parser).__name__ if connections else parser.__name__
    await client.aclose()
    await pool.disconnect()
    return used, out


def raw_socket_rtt(port: int, n: int) -> list[float]:
    """GET over a plain blocking socket, no client library: the floor of one round trip."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request, times = b"*2\r\n$3\r\nGET\r\n$4\r\nfact\r\n", []
        for i in range(n + 200):
            t = time.perf_counter_ns()
            s.sendall(request)
            reply = s.recv(4096)
            while len(reply) < 107:  # "$100\r\n" + 100 bytes + "\r\n"
                reply += s.recv(4096)
            if i >= 200:
                times.append((time.perf_counter_ns() - t) / 1000)
    return times


def redis_rows(singles: int, batches: int) -> list[tuple[str, str, str, float, float, float, float]]:
    """Rows: (parser, loop, mode, GETs/s, p50 µs, p90 µs, p99 µs) per call; the pipelined ones per batch."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    rows = []
    with running(argv, lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()):
        parsers: list[type] = [_AsyncHiredisParser, _AsyncRESP2Parser] if HIREDIS_AVAILABLE else [_AsyncRESP2Parser]
        for parser in parsers:
            for loop_name, factory in LOOPS.items():
                with asyncio.Runner(loop_factory=factory) as runner:
                    used, timings = runner.run(redis_timings(port, parser, singles, batches))
                for mode, times in timings.items():
                    per = 100 if mode.startswith("pipelined") else 1
                    rows.append((used, loop_name, mode, per * len(times) / (sum(times) / 1e6),
                                 pct(times, 0.5), pct(times, 0.9), pct(times, 0.99)))
        times = raw_socket_rtt(port, singles)
        rows.append(("none (raw socket)", "blocking", "one at a time", len(times) / (sum(times) / 1e6),
                     pct(times, 0.5), pct(times, 0.9), pct(times, 0.99)))
    return rows


# ---------------------------------------------------------------- report


def _cmd(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=10)
    except OSError:
        return "?"
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else "?"


def machine_header(load_start: str, mode: str, seconds: int) -> list[str]:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    load1 = float(load_start.split()[0])
    libs = ", ".join(f"{name} {version(name)}" for name in
                     ("uvicorn", "uvloop", "httptools", "h11", "starlette", "redis", "hiredis", "aiofiles"))
    return [
        "# Platform facts: the building blocks the design relies on, measured on this machine",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; commit: {_cmd(['git', 'rev-parse', '--short', 'HEAD'])}",
        f"- machine: nproc {_cmd(['nproc'])}, CPU {cpu.group(1) if cpu else '?'}, kernel {platform.release()}, "
        f"Python {platform.python_version()}",
        f"- other load present: {'yes' if load1 >= 0.5 else 'no'} (/proc/loadavg at start: {load_start}; "
        f"at end: {Path('/proc/loadavg').read_text().strip()})",
        f"- tools: {_cmd(['nginx', '-v'])}, {_cmd(['wrk', '-v'])}, {_cmd(['redis-server', '--version'])}",
        f"- libraries: {libs}",
        f"- run: {mode}; wrk -t1, {seconds}s per row after a 1s warm-up; 4 KiB with {SMALL_CONNECTIONS} connections, "
        f"64 MiB with {LARGE_CONNECTIONS}; every server one process on 127.0.0.1, files in the page cache; "
        "wrk shares the 2 cores with the server",
    ]


def http_table(rows: list[HttpRow], large: bool) -> list[str]:
    base = rows[0]
    unit = "CPU ms/req" if large else "CPU µs/req"
    speed_unit = "MB/s" if large else "req/s"
    lines = [f"| server | {speed_unit} | p50 ms | p90 ms | p99 ms | server {unit} | ratio to nginx | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        speed = f"{r.mbps:,.0f}" if large else f"{r.rps:,.0f}"
        cpu = r.cpu_us_per_req / 1000 if large else r.cpu_us_per_req
        lines.append(f"| {r.server} | {speed} | {r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | {cpu:,.1f} | "
                     f"{r.rps / base.rps:.2f}x | {r.errors or '-'} |")
    return lines


def small_shares(rows: list[HttpRow]) -> list[str]:
    by = {r.server: r.rps for r in rows}
    raw = by["raw ASGI, uvloop + httptools"]
    return ["",
            f"- httptools' share: raw app with httptools / with h11 (both uvloop) = "
            f"{raw / by['raw ASGI, uvloop + h11']:.2f}x",
            f"- uvloop's share: raw app on uvloop / on asyncio (both httptools) = "
            f"{raw / by['raw ASGI, asyncio + httptools']:.2f}x",
            f"- Starlette's cost: Starlette route / raw app (same server) = "
            f"{by['Starlette route, uvloop + httptools'] / raw:.2f}x"]


def render(header: list[str], small: list[HttpRow], large: list[HttpRow],
           reads: list[tuple[str, str, float, float, float]],
           redis: list[tuple[str, str, str, float, float, float, float]]) -> str:
    lines = [*header, "", "## 1. 4 KiB GET", "", *http_table(small, False), *small_shares(small),
             "", "## 2. 64 MiB GET (ratios to nginx with sendfile on)", "", *http_table(large, True),
             "", "## 3. 4 KiB read from the page cache inside asyncio (µs per read, random aligned offsets in 64 MiB)", "",
             "| method | loop | p50 µs | p90 µs | p99 µs | p50 ratio to preadv RWF_NOWAIT |", "|---|---|---|---|---|---|"]
    floor = {loop: p50 for name, loop, p50, _, _ in reads if "RWF_NOWAIT" in name}
    lines += [f"| {n} | {lp} | {a:.1f} | {b:.1f} | {c:.1f} | {a / floor[lp]:.1f}x |" for n, lp, a, b, c in reads]
    lines += ["", "## 4. Redis GET of a 100-byte value (redis.asyncio; pipelined latencies are per batch of 100)", "",
              "| parser | loop | mode | GETs/s | p50 µs | p90 µs | p99 µs |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p} | {lp} | {m} | {r:,.0f} | {a:.1f} | {b:.1f} | {c:.1f} |" for p, lp, m, r, a, b, c in redis]
    lines += ["", f"redis-py's automatic parser here: {DefaultParser.__name__} (hiredis available: {HIREDIS_AVAILABLE}). "
              "The pure-Python rows asked for _AsyncRESP2Parser; the name shown is the parser the connection used."]
    return "\n".join(lines) + "\n"


def make_data(work: Path) -> Path:
    work.chmod(0o755)  # nginx's worker drops root and must read the files
    data = work / "data"
    data.mkdir()
    (data / "4KiB.bin").write_bytes(os.urandom(SMALL))
    (data / "64MiB.bin").write_bytes(os.urandom(LARGE))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter rows and fewer samples (under ~1.5 minutes)")
    parser.add_argument("--serve", choices=["raw", "starlette"], help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="uvloop", help=argparse.SUPPRESS)
    parser.add_argument("--http", default="httptools", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.loop, args.http, args.port, args.data)
    load_start = Path("/proc/loadavg").read_text().strip()
    seconds, reads_n, singles, batches = (2, 5000, 2000, 100) if args.quick else (8, 20000, 10000, 400)
    work = Path(tempfile.mkdtemp(prefix="platform-facts-"))
    try:
        data = make_data(work)
        print("1, 2: HTTP with wrk", flush=True)
        small, large = nginx_rows(work, data, seconds)
        more_small, more_large = uvicorn_rows(data, seconds)
        print("3: page-cache reads; 4: Redis", flush=True)
        reads = read_rows(data / "64MiB.bin", reads_n)
        redis = redis_rows(singles, batches)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = machine_header(load_start, "--quick" if args.quick else "full", seconds)
    report = render(header, small + more_small, large + more_large, reads, redis)
    print(report)
    out = ROOT / "benchmarks" / "results" / f"platform_facts-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
