"""What a directory store knows of each object: its metadata from memory, its sidecar or its bytes.

The store owns one ``KnownObjects`` and asks it for the metadata of every file it reads or lists; a write
tells it what was written (``remember``) or that what it knew is stale (``forget``). The bytes of small hot
objects are held beside their metadata, and dropped with it.
"""

from __future__ import annotations

import asyncio
import os
import time

from cache.bounded import Bounded
from cache.s3.errors import no_such_key
from cache.s3.model import ObjectMeta
from cache.storage.directory.layout import (
    EMPTY_MD5,
    BucketPaths,
    file_md5,
    meta_from_record,
    read_sidecar,
    stamp_of,
    write_sidecar,
)
from cache.storage.directory.memory import (
    META_CACHE_ENTRIES,
    SIDECAR_RECHECK_S,
    SMALL_OBJECTS_TOTAL_BYTES,
    Known,
)


class KnownObjects:
    """Metadata of recently used objects (so a warm GET costs a stat, not a JSON read) and small objects' bytes."""

    def __init__(self) -> None:
        self._meta_cache: Bounded[tuple[str, str], Known] = Bounded(META_CACHE_ENTRIES)
        self._contents: Bounded[tuple[str, str], tuple[list[int], bytes]] = Bounded(
            META_CACHE_ENTRIES, weigh=lambda held: len(held[1]), max_weight=SMALL_OBJECTS_TOTAL_BYTES)

    def sidecar_stamp(self, paths: BucketPaths, key: str) -> list[int] | None:
        try:
            return stamp_of(os.stat(paths.meta_str(key)))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def meta_for(
        self, bucket: str, paths: BucketPaths, key: str, st: os.stat_result, may_hash: bool = True
    ) -> ObjectMeta | None:
        """The metadata of the file behind st: from memory, from its sidecar, or (for a file written
        behind our back) by hashing it. None when hashing is needed and may_hash is False."""
        data_stamp = stamp_of(st)
        known = self._meta_cache.get((bucket, key))
        if known is not None and known.data_stamp == data_stamp:
            now = time.monotonic()
            if now - known.side_checked < SIDECAR_RECHECK_S:
                return known.meta  # this process's own writes always replace the entry
            if self.sidecar_stamp(paths, key) == known.side_stamp:
                known.side_checked = now
                return known.meta
        side_stamp = self.sidecar_stamp(paths, key)
        record = read_sidecar(paths.meta_str(key)) if side_stamp is not None else None
        if record is None or record.get("stamp") != data_stamp:
            # Written behind our back (or a torn commit): the bytes are the truth, old metadata is not.
            if not may_hash:
                return None
            record = {"etag": file_md5(paths.data(key)), "stamp": data_stamp}
            write_sidecar(paths, key, record)
            side_stamp = self.sidecar_stamp(paths, key)
        meta = meta_from_record(key, record, st)
        self.remember(bucket, key, data_stamp, side_stamp, meta)
        return meta

    async def meta(self, bucket: str, paths: BucketPaths, key: str, st: os.stat_result) -> ObjectMeta:
        """meta_for on the event loop when it is cheap, in a thread when the file must be hashed."""
        meta = self.meta_for(bucket, paths, key, st, may_hash=False)
        if meta is None:
            meta = await asyncio.to_thread(self.meta_for, bucket, paths, key, st)
        assert meta is not None
        return meta

    def remember(self, bucket: str, key: str, data_stamp: list[int], side: list[int] | None, meta: ObjectMeta) -> None:
        self._meta_cache.put((bucket, key), Known(data_stamp, side, time.monotonic(), meta))
        self._contents.pop((bucket, key))

    def forget(self, bucket: str, key: str) -> None:
        self._meta_cache.pop((bucket, key))
        self._contents.pop((bucket, key))

    def clear(self) -> None:
        self._meta_cache.clear()
        self._contents.clear()

    def held(self, bucket: str, key: str) -> tuple[list[int], bytes] | None:
        """The bytes of a small hot object, with the stamp of the file they were read from."""
        return self._contents.get((bucket, key))

    def hold(self, bucket: str, key: str, data_stamp: list[int], data: bytes) -> None:
        self._contents.put((bucket, key), (data_stamp, data))

    def part_sizes(self, paths: BucketPaths, key: str, meta: ObjectMeta) -> list[int] | None:
        """The size of each part of a multipart object, as its completion recorded them in the sidecar (read on
        demand: only part reads ask); None when not recorded (completed before s3cache recorded them) or not of
        this version (its ETag, part count and size must agree)."""
        record = read_sidecar(paths.meta_str(key))
        sizes = record.get("part_sizes") if record is not None else None
        if record is None or record.get("etag") != meta.etag or not isinstance(sizes, list) \
                or len(sizes) != meta.parts_count or not all(type(size) is int and size >= 0 for size in sizes) \
                or sum(sizes) != meta.size:
            return None
        return sizes

    def marker_meta(self, paths: BucketPaths, key: str, st: os.stat_result) -> ObjectMeta:
        record = read_sidecar(paths.meta(key))
        if record is None:
            if any(True for _ in os.scandir(paths.data(key))):
                raise no_such_key(key)  # an implicit directory: a prefix, not an object
            record = {"etag": EMPTY_MD5}
        return meta_from_record(key, record, st)

    def listed_meta(self, bucket: str, paths: BucketPaths, key: str, st: os.stat_result) -> ObjectMeta:
        meta = self.meta_for(bucket, paths, key, st)  # listings run in a thread: hashing is allowed
        assert meta is not None
        return meta
