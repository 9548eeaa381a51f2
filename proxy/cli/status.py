"""`s3cache status`: a worker's view of itself and its cluster, as a table for people or JSON for tools."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _ratio(hits: float, misses: float) -> str:
    return f"{hits / (hits + misses):.1%}" if hits + misses else "-"


def render(report: dict[str, Any]) -> str:
    worker, cache, cluster = report["worker"], report["cache"], report["cluster"]
    source = worker["origin"] or worker["data_dir"]
    lines = []
    if cluster is None:
        lines.append(f"s3cache worker {worker['url']}: standalone, serving {source}")
        rows = [] if cache is None else [{"id": worker["url"], "url": worker["url"], "blocks": cache["blocks"],
                                          "used": cache["used_bytes"], "capacity": cache["capacity_bytes"],
                                          "hits": cache["hits"], "misses": cache["misses"]}]
    else:
        redis = "up" if cluster["redis_up"] else "DOWN"
        lines.append(f"s3cache cluster seen from {worker['url']}: {len(cluster['workers'])} live workers, "
                     f"Redis {cluster['redis']} {redis}, data path {worker['data_path']}, serving {source}")
        rows = cluster["workers"]
    if rows:
        lines.append(f"{'WORKER':<28} {'URL':<28} {'BLOCKS':>8} {'USED':>11} {'CAPACITY':>11} {'HIT RATIO':>9}")
        for row in rows:
            lines.append(f"{row['id'][:28]:<28} {row['url'][:28]:<28} {row['blocks']:>8} {_size(row['used']):>11} "
                         f"{_size(row['capacity']):>11} {_ratio(row['hits'], row['misses']):>9}")
        total = {name: sum(r[name] for r in rows) for name in ("blocks", "used", "capacity", "hits", "misses")}
        lines.append(f"{'total':<57} {total['blocks']:>8} {_size(total['used']):>11} "
                     f"{_size(total['capacity']):>11} {_ratio(total['hits'], total['misses']):>9}")
    else:
        lines.append("no block cache on this worker (a directory is served directly)")
    lines.append(f"requests answered by this worker: {worker['requests']}")
    return "\n".join(lines)


def status(endpoint: str, as_json: bool) -> str:
    report = httpx.get(endpoint.rstrip("/") + "/_s3cache/status", timeout=5.0).raise_for_status().json()
    return json.dumps(report, indent=2) if as_json else render(report)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state = commands.add_parser("status", help="show a worker and its cluster: workers, cache use, hit ratio",
                                description="Ask a worker for its view of itself and of the cluster it is in.")
    state.add_argument("--endpoint", default="http://127.0.0.1:29998", metavar="URL",
                       help="any worker of the cluster (default http://127.0.0.1:29998)")
    state.add_argument("--json", action="store_true", help="print the raw report as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        print(status(args.endpoint, args.json))
    except httpx.HTTPError as error:
        print(f"s3cache: cannot read the status of {args.endpoint}: {error}", file=sys.stderr)
        return 1
    return 0
