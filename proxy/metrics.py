"""Prometheus metrics: plain counters on the request path, rendered by prometheus_client on scrape.

Counting a request costs a couple of dict updates; formatting happens only when /_s3cache/metrics is
read, through prometheus_client's custom-collector API (the exposition format is the library's).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

if TYPE_CHECKING:
    from proxy.context import Stack

SOURCES = ("local", "peer", "origin")  # where a client's block came from (cache.blocks.reader counts them)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, stack: Stack | None) -> None:
        self.stack = stack
        self.requests: Counter[tuple[str, int]] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {}  # operation -> bucket counts..., +Inf count, sum
        self.refused: Counter[str] = Counter()  # S3 requests answered 503 SlowDown by admission control, by reason
        self._last_heartbeat = (time.monotonic(), 0)  # (when, requests then): the rate a heartbeat publishes
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, operation: str, status: int, size: int, seconds: float) -> None:
        self.requests[(operation, status)] += 1
        self.bytes_sent[operation] += size
        counts = self.latency.get(operation)
        if counts is None:
            counts = self.latency[operation] = [0.0] * (len(LATENCY_BUCKETS_S) + 2)
        counts[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        counts[-1] += seconds

    def heartbeat_stats(self) -> dict[str, float]:
        """What this worker publishes with each heartbeat (cache.cluster.registry), for `s3cache status`: its cache's
        stats, its block size, the free space of the cache's disk, requests answered and their rate since the last
        heartbeat, and the bytes its clients read by where they came from."""
        stats: dict[str, float] = {}
        stack = self.stack
        if stack is not None and stack.blocks is not None:
            stats.update(stack.blocks.stats())
            disk = os.statvfs(stack.blocks.directory)
            stats.update(disk_free_bytes=disk.f_bavail * disk.f_frsize, disk_size_bytes=disk.f_blocks * disk.f_frsize)
        if stack is not None and stack.reader is not None:
            stats["block_size_bytes"] = stack.reader.block_size
            for source in SOURCES:
                stats[f"served_{source}_bytes"] = stack.reader.served_bytes[source]
        now, requests = time.monotonic(), sum(self.requests.values())
        then, before = self._last_heartbeat
        stats["requests"] = requests
        stats["requests_per_s"] = (requests - before) / (now - then) if now > then else 0.0
        self._last_heartbeat = (now, requests)
        return stats

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("s3cache_requests", "S3 requests by operation and status",
                                       labels=["operation", "status"])
        for (operation, status), count in sorted(self.requests.items()):
            requests.add_metric([operation, str(status)], count)
        yield requests
        sent = CounterMetricFamily("s3cache_response_bytes", "Body bytes sent, by operation", labels=["operation"])
        for operation, count in sorted(self.bytes_sent.items()):
            sent.add_metric([operation], count)
        yield sent
        latency = HistogramMetricFamily("s3cache_request_duration_seconds", "Time to answer a request",
                                        labels=["operation"])
        for operation, counts in sorted(self.latency.items()):
            cumulative: float = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, in_bucket in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], counts[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            latency.add_metric([operation], buckets, counts[-1])
        yield latency
        refused = CounterMetricFamily("s3cache_requests_refused", "S3 requests refused with 503 SlowDown when the "
                                      "worker was saturated, by reason (inflight, waiting_fills)", labels=["reason"])
        for reason, count in sorted(self.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        yield from self._cache_metrics()

    def _cache_metrics(self) -> Iterator[Metric]:
        stack = self.stack
        if stack is None or stack.blocks is None:
            return
        stats = stack.blocks.stats()
        for name, help_text in (("blocks", "Blocks in the local cache"),
                                ("used_bytes", "Bytes of the local cache in use"),
                                ("capacity_bytes", "Capacity of the local cache")):
            yield GaugeMetricFamily(f"s3cache_cache_{name}", help_text, value=stats[name])
        for name, help_text in (("hits", "Block reads served from the local cache"),
                                ("misses", "Block reads not in the local cache"),
                                ("evictions", "Blocks evicted from the local cache")):
            yield CounterMetricFamily(f"s3cache_cache_{name}", help_text, value=stats[name])
        if stack.reader is not None:
            yield CounterMetricFamily("s3cache_origin_block_fetches", "Blocks fetched from the under storage",
                                      value=stack.reader.origin_fetches)
            yield CounterMetricFamily("s3cache_peer_block_reads", "Block ranges read from other workers",
                                      value=stack.reader.peer_reads)
            yield GaugeMetricFamily("s3cache_fills_waiting", "Origin fills waiting for a slot (cache.max_fills); "
                                    "past cache.max_waiting_fills requests are refused", value=stack.reader.waiting_fills)
        if stack.registry is not None:
            yield GaugeMetricFamily("s3cache_cluster_workers", "Live workers in the cluster",
                                    value=len(stack.registry.members))
            yield GaugeMetricFamily("s3cache_redis_up", "1 when Redis answers", value=int(stack.registry.healthy))
            yield CounterMetricFamily("s3cache_invalidations", "Invalidations this worker published for its writes",
                                      value=stack.registry.invalidations)
            yield CounterMetricFamily("s3cache_invalidations_unacknowledged", "Invalidations some worker did not "
                                      "acknowledge in time (a stalled or partitioned worker)",
                                      value=stack.registry.unacknowledged)
