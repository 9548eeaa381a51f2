"""Hit ratios of the block store's eviction policies (LRU, S3-FIFO from cache/eviction.py) on synthetic traces.

A pure simulation, no servers: each trace is a sequence of block ids; a cache of a fixed number of equal
blocks serves it the way cache.blocks.store.BlockStore drives a policy (a hit touches the block; a miss evicts
victims until the new block fits, then inserts it). Traces:

- ``zipf-A``: Zipf popularity with exponent A over ``--blocks`` ids (popularity rank shuffled over the ids);
- ``zipf-1.0+scans``: the Zipf(1.0) trace with ``--scan-share`` of the requests replaced by sequential scans
  (bursts of ``--scan-length`` blocks never read again: a dataset streamed once, the case S3-FIFO's small
  FIFO is made for).

Cache sizes are fractions of the ``--blocks`` id space (the working set the skewed traffic draws from).
Hit ratios count the requests after the first ``--warmup`` share of each trace. The table is printed and
written to benchmarks/results/ with the machine and commit.

    python benchmarks/eviction_hit_ratio.py [--blocks 100000] [--requests 1000000] [--alphas 0.8 1.0 1.2]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cache.blocks.eviction import LRU, S3FIFO, EvictionPolicy
from rig.report import header, write_report

POLICIES: dict[str, Callable[[], EvictionPolicy]] = {"LRU": LRU, "S3-FIFO": S3FIFO}


def zipf_trace(rng: random.Random, blocks: int, alpha: float, length: int) -> list[int]:
    ids = list(range(blocks))
    rng.shuffle(ids)  # rank -> id: popularity unrelated to the id
    weights = itertools.accumulate(1.0 / (rank + 1) ** alpha for rank in range(blocks))
    return rng.choices(ids, cum_weights=list(weights), k=length)


def with_scans(rng: random.Random, base: list[int], blocks: int, share: float, scan_length: int) -> list[int]:
    """base with about share of its requests replaced by sequential bursts of fresh ids (read once each)."""
    trace: list[int] = []
    scanned = blocks  # scan ids start above the Zipf id space and never repeat
    position = 0
    while position < len(base):
        # Alternate Zipf runs and scan bursts, so that scans are share of the requests on average.
        run = max(1, round(rng.expovariate(1.0) * scan_length * (1 - share) / share))
        trace += base[position:position + run]
        position += run
        burst = min(scan_length, len(base) - position)
        trace += range(scanned, scanned + burst)
        scanned += burst
        position += burst
    return trace


@dataclass
class Outcome:
    trace: str
    distinct: int
    cache_share: float
    capacity: int
    ratios: dict[str, float]
    seconds: float


def simulate(policy: EvictionPolicy, trace: list[int], capacity: int, warmup: int) -> float:
    """Hit ratio of trace[warmup:], driving the policy exactly as BlockStore does."""
    cached: set[int] = set()
    hits = 0
    insert, touch, remove, victim = policy.insert, policy.touch, policy.remove, policy.victim
    for index, block in enumerate(trace):
        if block in cached:
            touch(block)  # type: ignore[arg-type]
            if index >= warmup:
                hits += 1
            continue
        while len(cached) >= capacity:
            evicted = victim()
            if evicted is None:
                break
            remove(evicted)
            cached.discard(evicted)  # type: ignore[arg-type]
        insert(block, 1)  # type: ignore[arg-type]
        cached.add(block)
    return hits / max(1, len(trace) - warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=100_000, help="ids the skewed traffic draws from")
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests per trace")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.8, 1.0, 1.2], help="Zipf exponents")
    parser.add_argument("--cache-shares", type=float, nargs="+", default=[0.01, 0.05, 0.10],
                        help="cache sizes as fractions of --blocks")
    parser.add_argument("--scan-share", type=float, default=0.3, help="share of scan requests in the scan trace")
    parser.add_argument("--scan-length", type=int, default=10_000, help="blocks per scan burst")
    parser.add_argument("--warmup", type=float, default=0.1, help="leading share of each trace not counted")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    traces: dict[str, list[int]] = {}
    for alpha in args.alphas:
        traces[f"zipf-{alpha:.1f}"] = zipf_trace(rng, args.blocks, alpha, args.requests)
    base = traces.get("zipf-1.0") or zipf_trace(rng, args.blocks, 1.0, args.requests)
    traces["zipf-1.0+scans"] = with_scans(rng, base, args.blocks, args.scan_share, args.scan_length)
    outcomes = []
    for name, trace in traces.items():
        distinct = len(set(trace))
        for share in args.cache_shares:
            capacity = max(1, round(share * args.blocks))
            began = time.perf_counter()
            ratios = {label: simulate(make(), trace, capacity, int(args.warmup * len(trace)))
                      for label, make in POLICIES.items()}
            outcomes.append(Outcome(name, distinct, share, capacity, ratios, time.perf_counter() - began))
            print(f"{name} cache {share:.0%}: " + ", ".join(f"{k} {v:.2%}" for k, v in ratios.items()),
                  file=sys.stderr)
    write_report("eviction_hit_ratio", render(outcomes, args))


def render(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    lines = header("Eviction policies: hit ratios of LRU and S3-FIFO on skewed traces (simulation)", [
        "policies: cache/eviction.py LRU and S3FIFO (small FIFO 10%, ghost FIFO as long as the cache), driven as "
        "BlockStore drives them; equal-sized blocks",
        f"traces: {args.requests:,} requests each; Zipf over {args.blocks:,} block ids; the scan trace replaces "
        f"~{args.scan_share:.0%} of the Zipf(1.0) requests with sequential bursts of {args.scan_length:,} blocks "
        f"read once; seed {args.seed}",
        f"cache sizes: share of the {args.blocks:,} ids; hit ratios exclude the first {args.warmup:.0%} of each trace",
    ])
    lines += [
        "| trace | distinct blocks | cache | cache blocks | LRU hit ratio | S3-FIFO hit ratio | S3-FIFO - LRU |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        lru, fifo = o.ratios["LRU"], o.ratios["S3-FIFO"]
        lines.append(f"| {o.trace} | {o.distinct:,} | {o.cache_share:.0%} | {o.capacity:,} | {lru:.2%} | "
                     f"{fifo:.2%} | {(fifo - lru) * 100:+.1f} pts |")
    better = [o for o in outcomes if o.ratios["S3-FIFO"] > o.ratios["LRU"]]
    lines += ["", f"S3-FIFO beats LRU in {len(better)} of {len(outcomes)} cases."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
