"""Warm GETs through s3cache and through nginx serving the same files, side by side in one run.

For a 4 KiB and a 64 MiB object, wrk drives each server for a fixed time on 127.0.0.1; the table
reports req/s, MB/s, latency percentiles, and s3cache's ratio to nginx with the same number of
processes. Results are printed and written to benchmarks/results/ with the machine and commit.

    python benchmarks/get_vs_nginx.py [--seconds 5] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rig.processes import Worker, free_port, wait_http  # noqa: E402

NGINX_CONF = """
worker_processes {processes};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        root {data};
        location / {{ }}
    }}
}}
"""

SIZES = {"4KiB": 4 << 10, "64MiB": 64 << 20}
CONNECTIONS = {"4KiB": 32, "64MiB": 4}


@dataclass
class Result:
    server: str
    processes: int
    size: str
    requests_per_s: float
    mb_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url],
        check=True, capture_output=True, text=True).stdout
    latency = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M))
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or not rps or not transfer or not maximum:
        raise RuntimeError(f"wrk run against {url} failed:\n{out}")
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[transfer.group(2)]
    return {
        "rps": float(rps.group(1)), "mbps": float(transfer.group(1)) * scale * 1.048576,
        "p50": _ms(latency["50"]), "p90": _ms(latency["90"]), "p99": _ms(latency["99"]), "max": _ms(maximum.group(1)),
    }


def start_nginx(work: Path, data: Path, processes: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / f"nginx-{processes}.conf"
    conf.write_text(NGINX_CONF.format(processes=processes, work=work, port=port, data=data))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/bench/4KiB.bin", proc=proc)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="server processes to compare")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3cache-bench-"))
    work.chmod(0o755)  # nginx workers drop root for an unprivileged user that must read the files
    data = work / "data"
    (data / "bench").mkdir(parents=True)
    for name, size in SIZES.items():
        with open(data / "bench" / f"{name}.bin", "wb") as fh:
            fh.write(os.urandom(size))
    results: list[Result] = []
    try:
        for processes in args.processes:
            worker = Worker(["--data", str(data), "--processes", str(processes), "--log-level", "warning"], work)
            worker.start()
            nginx, nginx_port = start_nginx(work, data, processes)
            try:
                for name in SIZES:
                    for server, base in (("nginx", f"http://127.0.0.1:{nginx_port}"), ("s3cache", worker.url)):
                        url = f"{base}/bench/{name}.bin"
                        run_wrk(url, CONNECTIONS[name], 1)  # warm: page cache, connections, metadata
                        m = run_wrk(url, CONNECTIONS[name], args.seconds)
                        results.append(Result(server, processes, name, m["rps"], m["mbps"], m["p50"], m["p90"],
                                              m["p99"], m["max"]))
            finally:
                worker.stop()
                nginx.send_signal(signal.SIGQUIT)
                nginx.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = render(results, args.seconds)
    print(report)
    out = ROOT / "benchmarks" / "results" / f"get_vs_nginx-{time.strftime('%Y%m%d-%H%M%S')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(f"written to {out.relative_to(ROOT)}")


def render(results: list[Result], seconds: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    lines = [
        "# Warm GET: s3cache vs nginx serving the same files",
        "",
        f"- machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
        f"- commit: {commit.strip()}; date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- load: wrk -t1, {seconds}s per row, 4KiB with {CONNECTIONS['4KiB']} connections, "
        f"64MiB with {CONNECTIONS['64MiB']}; anonymous GETs on 127.0.0.1, files in the page cache",
        "",
        "| size | processes | server | req/s | MB/s | p50 ms | p90 ms | p99 ms | max ms | s3cache/nginx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    nginx = {(r.size, r.processes): r for r in results if r.server == "nginx"}
    for r in results:
        ratio = f"{r.requests_per_s / nginx[(r.size, r.processes)].requests_per_s:.2f}x" if r.server == "s3cache" else ""
        lines.append(f"| {r.size} | {r.processes} | {r.server} | {r.requests_per_s:,.0f} | {r.mb_per_s:,.1f} | "
                     f"{r.p50_ms:.2f} | {r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.max_ms:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
