"""What `s3cache status` concludes from a report: rows, totals and each warning, on hand-made reports."""

from __future__ import annotations

from typing import Any

from proxy.cli.health import rows, totals, warnings

NOW = 1_000_000.0
GiB = 1 << 30


def worker(wid: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": wid, "url": f"http://{wid}:29998", "live": True, "started": NOW - 600,
                              "heartbeat": NOW - 0.5, "heartbeat_ttl_s": 3, "capacity_bytes": 10 * GiB,
                              "used_bytes": GiB, "blocks": 256, "hits": 3, "misses": 1, "block_size_bytes": 4 << 20,
                              "disk_free_bytes": 100 * GiB, "disk_size_bytes": 200 * GiB, "master": "",
                              "served_local_bytes": 5, "served_peer_bytes": 6, "served_origin_bytes": 7,
                              "requests_per_s": 2.5}
    return {**record, **fields}


def report(*workers: dict[str, Any], redis_up: bool = True) -> dict[str, Any]:
    return {"worker": {"url": "http://w0:29998", "origin": "http://minio:9000", "data_dir": "data",
                       "data_path": "proxy"},
            "cache": None, "cluster": {"redis": "redis://r:6379/0", "redis_up": redis_up, "block_size_bytes": 4 << 20,
                                       "workers": list(workers)}}


def test_healthy_cluster_has_rows_totals_and_no_warning() -> None:
    seen = report(worker("w0"), worker("w1", blocks=10, used_bytes=GiB // 2, hits=1, misses=3))
    found = rows(seen, NOW)
    assert [(r.id, r.state) for r in found] == [("w0", "live"), ("w1", "live")]
    total = totals(found)
    assert (total.blocks, total.used, total.capacity, total.hits, total.misses) == (266, GiB + GiB // 2, 20 * GiB, 4, 4)
    assert total.served == {"local": 10, "peer": 12, "origin": 14} and total.requests_per_s == 5.0
    assert total.hit_ratio == 0.5
    assert warnings(seen, NOW) == []


def test_missing_heartbeats_flag_a_worker_after_two_and_a_gone_one_is_not_totalled() -> None:
    late = worker("w1", heartbeat=NOW - 2.1)  # heartbeats every 1 s: two missed
    gone = worker("w2", heartbeat=NOW - 9, live=False)
    seen = report(worker("w0"), late, gone)
    assert [r.state for r in rows(seen, NOW)] == ["live", "late", "gone"]
    assert totals(rows(seen, NOW)).blocks == 512
    assert warnings(seen, NOW) == [
        "worker w1 (http://w1:29998) is missing heartbeats: last one 2.1 s ago, expected every 1.0 s",
        "worker w2 (http://w2:29998) is missing heartbeats: last one 9.0 s ago, expected every 1.0 s; "
        "no longer a placement target"]
    assert warnings(report(worker("w1", heartbeat=NOW - 1.9)), NOW) == []


def test_a_disk_nearly_full_or_smaller_than_the_capacity_left() -> None:
    full = worker("w0", disk_free_bytes=9 * GiB)  # 4.5% of 200 GiB
    short = worker("w1", disk_free_bytes=20 * GiB, disk_size_bytes=200 * GiB, capacity_bytes=100 * GiB)
    assert warnings(report(full, short), NOW) == [
        f"worker w0: its cache disk is nearly full (4.5% free of {200 * GiB} bytes)",
        f"worker w1: its cache disk has {20 * GiB} bytes free, less than the {99 * GiB} its cache may still grow by "
        f"(cache.capacity_bytes {100 * GiB})"]


def test_block_size_mismatch_redis_unreachable_failover_and_split_masters() -> None:
    seen = report(worker("w0", block_size_bytes=1 << 20, master="10.0.0.2:6379", failover_at=NOW - 30,
                         failover_from="10.0.0.1:6379"),
                  worker("w1", master="10.0.0.1:6379"), redis_up=False)
    seen["cluster"]["error"] = "ConnectionError: refused"
    assert warnings(seen, NOW) == [
        "Redis at redis://r:6379/0 is unreachable from http://w0:29998 (ConnectionError: refused): the workers shown "
        "are its last snapshot",
        f"worker w0: block size {1 << 20} bytes, the cluster's is {4 << 20}: its blocks are not shared",
        "Redis failed over 30 s ago: the master is now 10.0.0.2:6379, was 10.0.0.1:6379",
        "the workers write to different Redis masters: 10.0.0.1:6379, 10.0.0.2:6379"]
    assert warnings(report(worker("w0", failover_at=NOW - 7200)), NOW) == []  # an hour on, no longer news


def test_a_standalone_worker_is_one_row_from_its_cache() -> None:
    seen = {"worker": {"url": "http://one:29998"}, "cluster": None,
            "cache": {"blocks": 3, "used_bytes": 30, "capacity_bytes": 100, "hits": 1, "misses": 1}}
    (row,) = rows(seen, NOW)
    assert (row.id, row.state, row.blocks, row.used, row.capacity) == ("http://one:29998", "live", 3, 30, 100)
    assert warnings(seen, NOW) == []
