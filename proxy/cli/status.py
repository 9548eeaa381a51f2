"""`s3cache status`: the cluster as Redis and the workers record it, as a table for people or JSON for tools,
once or every N seconds (`--watch`).

Any worker's `/_s3cache/status` reads the cluster from Redis at that moment (each worker's own heartbeat: its
numbers, its last heartbeat); `proxy.cli.health` turns that into rows, totals and warnings. The exit status is 0
when nothing is wrong, 1 when something is (a warning), 2 when the worker could not be asked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from proxy.cli.health import SOURCES, Row, rows, totals, warnings

NO_TERMINAL_WIDTH = 200  # piped or captured output: wide enough for every column on one line


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _ago(then: float, now: float) -> str:
    return f"{now - then:.1f}s ago" if then else "-"


def _since(then: float) -> str:
    return datetime.fromtimestamp(then, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if then else "-"


def _cells(row: Row, now: float) -> list[str]:
    ratio = "-" if row.hit_ratio is None else f"{row.hit_ratio:.1%}"
    return [row.id, row.url, row.state, _since(row.started), _ago(row.heartbeat, now), _size(row.capacity),
            _size(row.used), str(row.blocks), ratio, *(_size(row.served[s]) for s in SOURCES),
            f"{row.requests_per_s:.1f}"]


def headline(report: dict[str, Any]) -> str:
    worker, cluster = report["worker"], report["cluster"]
    source = worker["origin"] or worker["data_dir"]
    if cluster is None:
        return f"s3cache worker {worker['url']}: standalone, serving {source}"
    live = sum(1 for w in cluster["workers"] if w.get("live", True))
    redis = "up" if cluster["redis_up"] else "UNREACHABLE"
    return (f"s3cache cluster seen from {worker['url']}: {live} live workers, Redis {cluster['redis']} {redis}, "
            f"block size {cluster.get('block_size_bytes') or '-'}, data path {worker['data_path']}, serving {source}")


def render(report: dict[str, Any], now: float) -> Group:
    """The table: one row per worker, the totals, then the warnings (or that there are none)."""
    found = rows(report, now)
    parts: list[Any] = [Text(headline(report))]
    if found:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for name in ("WORKER", "URL", "STATE", "UP SINCE", "HEARTBEAT", "CAPACITY", "USED", "BLOCKS", "HIT RATIO",
                     *(f"FROM {s.upper()}" for s in SOURCES), "REQ/S"):
            table.add_column(name, justify="left" if name in ("WORKER", "URL", "STATE") else "right", no_wrap=True)
        for row in found:
            table.add_row(*_cells(row, now), style="red" if row.state != "live" else None)
        table.add_row(*_cells(totals(found), now), style="bold")
        parts.append(table)
    else:
        parts.append(Text("no block cache on this worker (a directory is served directly)"))
    problems = warnings(report, now)
    parts += [Text(f"WARNING: {text}", style="bold red") for text in problems] or [Text("no warnings")]
    return Group(*parts)


def fetch(endpoint: str) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(endpoint.rstrip("/") + "/_s3cache/status",
                                       timeout=5.0).raise_for_status().json()
    return report


def document(report: dict[str, Any], now: float) -> dict[str, Any]:
    """The JSON form: the worker's report, with the totals and warnings the table shows."""
    found = rows(report, now)
    total = totals(found)
    return {**report, "totals": {**vars(total), "hit_ratio": total.hit_ratio}, "warnings": warnings(report, now)}


def show(console: Console, endpoint: str, as_json: bool, watching: bool) -> int:
    """Print the status once; returns the exit status (0 healthy, 1 warnings, 2 no answer)."""
    try:
        report = fetch(endpoint)
    except (httpx.HTTPError, ValueError) as error:
        print(f"s3cache: cannot read the status of {endpoint}: {error}", file=sys.stderr, flush=True)
        return 2
    now = time.time()
    if as_json:
        console.out(json.dumps(document(report, now), indent=None if watching else 2), highlight=False)
        return 1 if warnings(report, now) else 0
    if watching and console.is_terminal:
        console.clear()
    console.print(render(report, now))
    return 1 if warnings(report, now) else 0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state = commands.add_parser(
        "status", help="show the cluster: workers, cache use, hit ratio, bytes by source, warnings",
        description="Ask any worker for the cluster as Redis records it: each worker (id, URL, up since, last "
        "heartbeat, capacity, used, blocks, hit ratio, bytes served from local disk, peers and the origin, "
        "requests/s), the totals, and warnings. Exit status 0: no warning; 1: warnings; 2: no answer.")
    state.add_argument("--endpoint", default="http://127.0.0.1:29998", metavar="URL",
                       help="any worker of the cluster (default http://127.0.0.1:29998)")
    state.add_argument("--json", action="store_true", help="print the report as JSON (one line per refresh "
                       "with --watch)")
    state.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                       help="refresh every SECONDS until Ctrl-C")
    state.add_argument("--count", type=int, default=0, metavar="N", help="with --watch: stop after N refreshes")


def run(args: argparse.Namespace) -> int:
    console = Console(width=None if sys.stdout.isatty() else NO_TERMINAL_WIDTH)
    if args.watch <= 0:
        return show(console, args.endpoint, args.json, watching=False)
    shown, code = 0, 0
    try:
        while True:
            code = show(console, args.endpoint, args.json, watching=True)
            shown += 1
            if args.count and shown >= args.count:
                break
            time.sleep(args.watch)
    except KeyboardInterrupt:  # Ctrl-C ends a watch: not an error
        pass
    return code
