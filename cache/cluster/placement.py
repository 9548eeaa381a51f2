"""Rendezvous (highest random weight) hashing: which live worker owns a block. Pure, stdlib only.

Every worker computes the same answer from the same membership, with no coordination: the owner of a
block is the worker whose (worker id, block id) hash is highest. Removing a worker moves only the blocks
it owned; adding one takes about 1/n of every other worker's blocks. The weight is the first 8 bytes of
BLAKE2b over ``worker_id NUL block_id``; ties (astronomically unlikely) go to the smaller worker id.
Golden vectors in tests/unit/hrw_golden.json pin this function across versions and platforms.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def placement_id(bucket: str, key: str, index: int) -> str:
    """What a block is placed by: its object's name and its index, not its version. So any worker can name the
    owner of a block before it knows the object's ETag: a cold read asks that owner once, and the owner asks the
    origin once (the block's identity, and so what is cached, still carries the ETag)."""
    return f"{bucket}\0{key}\0{index}"


def weight(worker_id: str, block_id: str) -> int:
    digest = hashlib.blake2b(f"{worker_id}\0{block_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(block_id: str, workers: Iterable[str]) -> list[str]:
    """Workers from the block's owner down: the order to try when the owner is unreachable."""
    return sorted(workers, key=lambda w: (-weight(w, block_id), w))


def owner(block_id: str, workers: Iterable[str]) -> str | None:
    best: str | None = None
    best_weight = -1
    for worker in workers:
        w = weight(worker, block_id)
        if w > best_weight or (w == best_weight and best is not None and worker < best):
            best, best_weight = worker, w
    return best
