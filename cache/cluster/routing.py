"""Where a block is read from in a cluster: this worker, a live holder, or the block's HRW owner.

The one decision is ``Cluster.route``: for a block not in the local store, the workers to ask are the live
workers that hold it (from the placement map), then every live worker in rendezvous order, down to this
worker: reaching this worker means "fill it here from the origin", so an empty route means this worker is
the one to fill it. A peer that cannot be reached is skipped (and avoided for a few seconds), and when every
peer of the route failed the block is filled here. So a cold block is fetched from the origin once,
by its owner, however many workers are asked for it; a warm block is read where it already is.
"""

from __future__ import annotations

import asyncio
import time

from cache.cluster.placement import ranked
from cache.cluster.registry import Registry

SUSPECT_S = 5.0


class Cluster:
    def __init__(self, registry: Registry, worker_id: str, registered: bool) -> None:
        self.registry = registry
        self.worker_id = worker_id
        self.registered = registered  # False for a pure gateway (cache capacity 0)
        self._suspects: dict[str, float] = {}
        self._looking: dict[str, asyncio.Future[dict[str, list[str]]]] = {}

    def url_of(self, worker_id: str) -> str:
        return self.registry.members[worker_id].url

    def live(self) -> list[str]:
        now = time.monotonic()
        ids = [w for w in self.registry.members if self._suspects.get(w, 0.0) <= now]
        if self.registered and self.worker_id not in ids:
            ids.append(self.worker_id)  # Redis away or this worker not yet in the snapshot: still a candidate
        return ids

    def suspect(self, worker_id: str) -> None:
        self._suspects[worker_id] = time.monotonic() + SUSPECT_S

    async def _candidates(self, block_id: str, placed_by: str) -> list[str]:
        """Workers to try for a block, best first; this worker's id means "fill it here"."""
        live = self.live()
        holders = await self._holders(block_id) if block_id else []
        order = [w for w in holders if w in live]
        order += [w for w in ranked(placed_by, live) if w not in order]
        return order

    async def _holders(self, block_id: str) -> list[str]:
        """Concurrent readers of one block share one lookup: a burst of cold readers is one Redis request per block,
        not one per reader (each would hold a pooled connection)."""
        pending = self._looking.get(block_id)
        if pending is None:
            pending = self._looking[block_id] = asyncio.ensure_future(self.registry.holders([block_id]))
            pending.add_done_callback(lambda _: self._looking.pop(block_id, None))
        return (await asyncio.shield(pending))[block_id]

    async def route(self, block_id: str, placed_by: str) -> list[str]:
        """The peers to ask for a block this worker lacks, best first; empty: this worker fills it (it owns the
        block, or nobody else is live). A gateway, never a candidate itself, gets every candidate. block_id
        names the cached version ("" when the version is not known yet: no holders then); placed_by
        (placement.placement_id) decides the owner."""
        order = await self._candidates(block_id, placed_by)
        return order[:order.index(self.worker_id)] if self.worker_id in order else order
