"""The cluster as Redis records it, read on demand for `s3cache status`: every worker live or lately seen, with
its own numbers, and the block size the cluster agreed on.

Each worker's numbers come from its own heartbeat (``cache.cluster.registry``: its block index, its counters),
so a block is counted once, by the one worker whose disk holds it, however often holders were republished to
the placement map. Nothing here is on a request's path.
"""

from __future__ import annotations

import json
import time
from typing import Any

from cache.cluster.connect import Client

SEEN_KEPT_S = 86_400.0  # a worker gone without leaving is shown (and flagged) for a day, then forgotten


def _value(raw: str) -> float | str:
    try:
        number = float(raw)
    except ValueError:
        return raw
    return int(number) if number.is_integer() and "." not in raw else number


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def read_view(redis: Client, ns: str) -> dict[str, Any]:
    """{"block_size_bytes": int | None, "workers": [{id, url, live, expires, heartbeat, started, stats...}]}:
    the live set (unexpired heartbeats) and the workers seen but no longer heartbeating, sorted by id."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(f"{ns}:workers", 0, -1, withscores=True)
        pipe.hgetall(f"{ns}:seen")
        pipe.hget(f"{ns}:config", "block_size_bytes")
        ranked, seen_raw, block_size = await pipe.execute()
    expiries = {_text(worker): float(score) for worker, score in ranked}
    seen = {_text(worker): json.loads(_text(info)) for worker, info in seen_raw.items()}
    stale = [worker for worker, info in seen.items()
             if worker not in expiries and now - float(info.get("heartbeat", 0)) > SEEN_KEPT_S]
    ids = sorted((set(expiries) | set(seen)) - set(stale))
    async with redis.pipeline(transaction=False) as pipe:
        for worker in ids:
            pipe.hgetall(f"{ns}:worker:{worker}")
        if stale:
            pipe.hdel(f"{ns}:seen", *stale)
        records = (await pipe.execute())[:len(ids)]
    workers = []
    for worker, record in zip(ids, records, strict=True):
        fields: dict[str, Any] = {**seen.get(worker, {}), **{_text(k): _value(_text(v)) for k, v in record.items()}}
        expires = expiries.get(worker, 0.0)
        workers.append({**fields, "id": worker, "live": expires > now, "expires": expires})
    return {"block_size_bytes": int(block_size) if block_size is not None else None, "workers": workers,
            "time": now}
