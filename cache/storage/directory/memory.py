"""What a directory store keeps in memory: each recent object's metadata, and the bytes of small hot ones.

Both are validated against the file on every read (its size, mtime and inode: the "stamp"), so memory
saves syscalls and JSON reads, never correctness: a file changed behind the worker's back is re-read.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from cache.s3.model import ObjectMeta

META_CACHE_ENTRIES = 65536
SIDECAR_RECHECK_S = 1.0  # another process's metadata-only change (tags) shows within this
SMALL_OBJECT_BYTES = 64 << 10  # objects up to this size are kept in memory once read
SMALL_OBJECTS_TOTAL_BYTES = 64 << 20


@dataclass
class Known:
    data_stamp: list[int]
    side_stamp: list[int] | None
    side_checked: float  # time.monotonic() of the last sidecar stat
    meta: ObjectMeta


class ContentCache:
    """Bytes of small hot objects, each tagged with the stamp of the file they were read from."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.held_bytes = 0
        self._items: OrderedDict[tuple[str, str], tuple[list[int], bytes]] = OrderedDict()

    def get(self, bucket: str, key: str) -> tuple[list[int], bytes] | None:
        return self._items.get((bucket, key))

    def put(self, bucket: str, key: str, stamp: list[int], data: bytes) -> None:
        self.forget(bucket, key)
        self._items[(bucket, key)] = (stamp, data)
        self.held_bytes += len(data)
        while self.held_bytes > self.budget_bytes:
            self.held_bytes -= len(self._items.popitem(last=False)[1][1])

    def forget(self, bucket: str, key: str) -> None:
        item = self._items.pop((bucket, key), None)
        if item is not None:
            self.held_bytes -= len(item[1])

    def clear(self) -> None:
        self._items.clear()
        self.held_bytes = 0
