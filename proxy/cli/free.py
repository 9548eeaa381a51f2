"""`s3cache free s3://bucket/prefix`: drop a prefix's blocks from every worker of the cluster and from the placement
map, so the next read of those objects goes to the origin again (data at the origin is untouched).

The live workers come from any worker's `/_s3cache/status`; each is sent `POST /_s3cache/peer/free`, signed with
the cluster secret like a peer request (so only who holds the secret can empty the cache), and drops every block of
the objects now listed under the prefix. Blocks of versions overwritten earlier are no longer named by any listing:
they are never read again and age out of the cache.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

from cache.cluster.peers import FREE_PATH, sign_request
from proxy.cli.load import parse_target

SECRET_ENV = "S3CACHE_CLUSTER_SECRET"
SIGNATURE_TTL_S = 30.0


def _secret(secret_file: Path | None) -> str:
    secret = secret_file.read_text().strip() if secret_file is not None else os.environ.get(SECRET_ENV, "").strip()
    if not secret:
        raise ValueError(f"the cluster secret is needed: set {SECRET_ENV} or give --cluster-secret-file")
    return secret


def _workers(endpoint: str) -> list[tuple[str, str]]:
    """(id, URL) of every live worker, or the endpoint alone when it is not in a cluster."""
    report = httpx.get(f"{endpoint}/_s3cache/status", timeout=10).raise_for_status().json()
    cluster = report.get("cluster")
    if cluster is None:
        return [(report["worker"]["url"], endpoint)]
    if not cluster.get("redis_up", True):
        raise ValueError(f"Redis is unreachable from {endpoint}: the workers cannot be listed")
    return [(str(w["id"]), str(w["url"])) for w in cluster["workers"] if w.get("live", True)]


def free(endpoint: str, target: str, secret: str) -> tuple[list[str], list[str]]:
    """Ask every live worker to drop the prefix: (lines of what each dropped, lines of what failed)."""
    bucket, prefix = parse_target(target)
    query = {"b": bucket, "p": prefix}
    done, failed = [], []
    totals = {"blocks": 0, "bytes": 0}
    with httpx.Client(timeout=120) as client:
        for worker, url in _workers(endpoint.rstrip("/")):
            headers = sign_request(secret, "POST", FREE_PATH, query, SIGNATURE_TTL_S)
            try:
                response = client.post(url.rstrip("/") + FREE_PATH, params=query, headers=headers)
                if response.status_code != 200:
                    failed.append(f"{worker} ({url}): {response.status_code} {response.text[:200]}")
                    continue
                found = response.json()
            except (httpx.HTTPError, ValueError) as error:
                failed.append(f"{worker} ({url}): {type(error).__name__}: {error}")
                continue
            done.append(f"{worker}: dropped {found['blocks']} blocks ({found['bytes']} bytes) of {found['objects']} "
                        "objects")
            for name in totals:
                totals[name] += int(found[name])
    done.append(f"freed {totals['blocks']} blocks ({totals['bytes']} bytes) of {target} on {len(done)} workers")
    return done, failed


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drop = commands.add_parser("free", help="drop a prefix's blocks from every worker's cache",
                               description="Drop every cached block of the objects under s3://bucket/prefix from "
                               "every live worker and from the placement map; the origin is untouched. Needs the "
                               f"cluster secret ({SECRET_ENV} or --cluster-secret-file). Exit status 1 if a worker "
                               "failed.")
    drop.add_argument("target", metavar="s3://bucket/prefix")
    drop.add_argument("--endpoint", default="http://127.0.0.1:29998", metavar="URL",
                      help="any worker of the cluster (default http://127.0.0.1:29998)")
    drop.add_argument("--cluster-secret-file", type=Path, metavar="FILE", help=f"the cluster secret (else {SECRET_ENV})")


def run(args: argparse.Namespace) -> int:
    try:
        done, failed = free(args.endpoint, args.target, _secret(args.cluster_secret_file))
    except (ValueError, OSError, httpx.HTTPError) as error:
        print(f"s3cache free: {error}", file=sys.stderr)
        return 2
    print("\n".join(done))
    for line in failed:
        print(f"s3cache free: {line}", file=sys.stderr)
    return 1 if failed else 0
