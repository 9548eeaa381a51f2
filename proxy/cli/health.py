"""What `s3cache status` concludes from a worker's report: one row per worker, the cluster's totals, and the
warnings an operator must see (a worker missing heartbeats, a disk nearly full, Redis unreachable or failed over,
a block size mismatch). Pure functions of the report and the time: the command renders them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOURCES = ("local", "peer", "origin")
MISSED_HEARTBEATS = 2  # heartbeats go every third of the TTL: two missed in a row flag a worker, within the TTL
DISK_FREE_MIN_FRACTION = 0.05  # less free than this on a cache's disk is "nearly full"
FAILOVER_SHOWN_S = 3600.0  # a Redis failover is a warning for an hour after a worker saw it


@dataclass(frozen=True)
class Row:
    id: str
    url: str
    state: str  # live, late (missing heartbeats), gone (dropped from the live set)
    started: float
    heartbeat: float
    capacity: int
    used: int
    blocks: int
    hits: int
    misses: int
    served: dict[str, int]
    requests_per_s: float

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / (self.hits + self.misses) if self.hits + self.misses else None


def _row(worker: dict[str, Any], now: float) -> Row:
    ttl = float(worker.get("heartbeat_ttl_s") or 0)
    heartbeat = float(worker.get("heartbeat") or 0)
    late = bool(ttl and heartbeat) and now - heartbeat > MISSED_HEARTBEATS * ttl / 3
    state = "gone" if not worker.get("live", True) else "late" if late else "live"
    return Row(str(worker["id"]), str(worker.get("url", "")), state, float(worker.get("started") or 0), heartbeat,
               int(worker.get("capacity_bytes", worker.get("capacity", 0))),
               int(worker.get("used_bytes", worker.get("used", 0))), int(worker.get("blocks", 0)),
               int(worker.get("hits", 0)), int(worker.get("misses", 0)),
               {source: int(worker.get(f"served_{source}_bytes", 0)) for source in SOURCES},
               float(worker.get("requests_per_s", 0.0)))


def rows(report: dict[str, Any], now: float) -> list[Row]:
    """The cluster's workers (live and lately seen) or, standalone, this worker alone."""
    cluster = report.get("cluster")
    if cluster is not None:
        return [_row(worker, now) for worker in cluster["workers"]]
    cache = report.get("cache")
    if cache is None:
        return []
    url = report["worker"]["url"]
    return [_row({**cache, "id": url, "url": url}, now)]


def totals(found: list[Row]) -> Row:
    """The live workers summed (a worker gone is not counted: its blocks are no longer served)."""
    live = [row for row in found if row.state != "gone"]
    return Row("total", "", "", 0.0, 0.0, sum(r.capacity for r in live), sum(r.used for r in live),
               sum(r.blocks for r in live), sum(r.hits for r in live), sum(r.misses for r in live),
               {source: sum(r.served[source] for r in live) for source in SOURCES},
               sum(r.requests_per_s for r in live))


# ---- warnings: each check reads the report (and one worker's record) and says what is wrong, if anything ---------

def _heartbeats(worker: dict[str, Any], row: Row, now: float) -> str | None:
    if row.state == "live":
        return None
    every = float(worker.get("heartbeat_ttl_s") or 0) / 3
    ago = f"last one {now - row.heartbeat:.1f} s ago" if row.heartbeat else "none recorded"
    dropped = "; no longer a placement target" if row.state == "gone" else ""
    return f"worker {row.id} ({row.url}) is missing heartbeats: {ago}, expected every {every:.1f} s{dropped}"


def _disk(worker: dict[str, Any], row: Row, now: float) -> str | None:
    free, size = worker.get("disk_free_bytes"), worker.get("disk_size_bytes")
    if free is None or not size or row.state == "gone":
        return None
    if free < DISK_FREE_MIN_FRACTION * size:
        return f"worker {row.id}: its cache disk is nearly full ({free / size:.1%} free of {size} bytes)"
    if free < row.capacity - row.used:
        return (f"worker {row.id}: its cache disk has {free} bytes free, less than the {row.capacity - row.used} "
                f"its cache may still grow by (cache.capacity_bytes {row.capacity})")
    return None


def _block_size(cluster: dict[str, Any]) -> Callable[[dict[str, Any], Row, float], str | None]:
    agreed = cluster.get("block_size_bytes")

    def check(worker: dict[str, Any], row: Row, now: float) -> str | None:
        own = worker.get("block_size_bytes")
        if agreed is None or own is None or int(own) == int(agreed) or row.state == "gone":
            return None
        return f"worker {row.id}: block size {own} bytes, the cluster's is {agreed}: its blocks are not shared"
    return check


def _failover(cluster: dict[str, Any], now: float) -> str | None:
    """The last failover any worker saw (each worker that saw it reports it)."""
    seen = [w for w in cluster["workers"] if float(w.get("failover_at") or 0) > now - FAILOVER_SHOWN_S]
    if not seen:
        return None
    last = max(seen, key=lambda w: float(w["failover_at"]))
    return (f"Redis failed over {now - float(last['failover_at']):.0f} s ago: the master is now "
            f"{last.get('master') or '?'}, was {last.get('failover_from') or '?'}")


def _masters(cluster: dict[str, Any], now: float) -> str | None:
    masters = {str(w["master"]) for w in cluster["workers"] if w.get("master") and w.get("live", True)}
    return f"the workers write to different Redis masters: {', '.join(sorted(masters))}" if len(masters) > 1 else None


def warnings(report: dict[str, Any], now: float) -> list[str]:
    cluster = report.get("cluster")
    if cluster is None:
        return []
    found: list[str] = []
    if not cluster.get("redis_up", True):
        found.append(f"Redis at {cluster.get('redis')} is unreachable from {report['worker']['url']} "
                     f"({cluster.get('error', 'no answer')}): the workers shown are its last snapshot")
    checks = (_heartbeats, _disk, _block_size(cluster))
    for worker in cluster["workers"]:
        row = _row(worker, now)
        found += [text for check in checks if (text := check(worker, row, now)) is not None]
    return found + [text for check in (_failover, _masters) if (text := check(cluster, now)) is not None]
