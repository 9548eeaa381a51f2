"""What the cluster holds of an object or a prefix: whether every block of an object version is cached somewhere
(`s3cache load` skips those), and dropping a prefix's blocks from this worker and the placement map
(`s3cache free`).

Blocks are named by the origin's bucket, key, ETag and size (``cache.blocks.reader.block_id``), so both are
worked out from metadata alone: an object's from its HEAD, a prefix's from one listing at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass

from cache.blocks.reader import BlockReader, block_id
from cache.storage.base import UnderStore

_LIST_PAGE = 1000


def block_ids(reader: BlockReader, bucket: str, key: str, etag: str, size: int) -> list[str]:
    return [block_id(bucket, key, etag, index, reader.block_size) for index in range(-(-size // reader.block_size))]


async def cached(reader: BlockReader, bucket: str, key: str, etag: str, size: int) -> bool:
    """True when every block of this version is on this worker's disk or held by a live worker (one Redis
    pipeline for those not here)."""
    elsewhere = [bid for bid in block_ids(reader, bucket, key, etag, size) if bid not in reader.blocks]
    if not elsewhere:
        return True
    if reader.cluster is None:
        return False
    holders = await reader.cluster.registry.holders(elsewhere, fresh=True)  # not a moment-old "nobody"
    return all(holders.get(bid) for bid in elsewhere)


@dataclass
class Freed:
    objects: int = 0
    blocks: int = 0
    bytes: int = 0


async def free_prefix(reader: BlockReader, store: UnderStore, bucket: str, prefix: str) -> Freed:
    """Drop from this worker every block of the objects under prefix (their versions now at the origin) and take
    this worker off those blocks in the placement map, held here or not (an entry a crash left behind goes too)."""
    freed = Freed()
    marker = ""
    registry = reader.cluster.registry if reader.cluster is not None else None
    while True:
        page = await store.list_objects(bucket, prefix, "", marker, _LIST_PAGE)
        for entry in page.entries:
            freed.objects += 1
            for bid in block_ids(reader, bucket, entry.key, entry.etag.strip('"'), entry.size):
                before = reader.blocks.used_bytes
                if reader.blocks.remove(bid):  # the store's listener takes it off the placement map
                    freed.blocks += 1
                    freed.bytes += before - reader.blocks.used_bytes
                elif registry is not None:
                    registry.dropped(bid)
        if not page.is_truncated or not page.next_marker:
            return freed
        marker = page.next_marker
