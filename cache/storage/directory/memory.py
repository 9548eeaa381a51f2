"""What a directory store keeps in memory: each recent object's metadata, and the bytes of small hot ones.

Both are validated against the file on every read (its size, mtime and inode: the "stamp"), so memory
saves syscalls and JSON reads, never correctness: a file changed behind the worker's back is re-read.
"""

from __future__ import annotations

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
