"""The block store: cached blocks on local disk. Mechanics only; what to cache is cache.blocks.reader's call.

A block file is a header and the block's bytes::

    magic "S3CB" | version u8 | pad[3] | data_len u64 | page_bytes u32 | pages u32 | crc32c u32 * pages

Each 64 KiB page carries its own CRC32C, so a read verifies exactly the pages it touches (~4 us a page)
and a corrupt block is dropped the moment it is read. Files are written under ``tmp/`` and renamed into
``<id[:2]>/<id>``; at start the index is rebuilt from the files present, so a restart keeps the cache.
The capacity is never exceeded by more than the blocks being written: a write reserves its size first,
evicting until it fits, and is skipped (not cached) when it cannot fit.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from awscrt.checksums import crc32c

from cache.blocks.eviction import POLICIES, EvictionPolicy
from cache.fileio import pread

log = logging.getLogger("s3cache.blocks")

MAGIC = b"S3CB"
VERSION = 1
PAGE_BYTES = 64 << 10
_FIXED = struct.Struct("<4sB3xQII")
_WRITE_FAILURES = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only",
                   errno.EACCES: "not writable", errno.EIO: "I/O error"}
# A block file this small is written on the event loop: a few system calls into the page cache cost less than the
# hop to a thread and back (a cold 4 KiB read spent more in that hop than in all of its origin request).
_INLINE_WRITE_BYTES = 256 << 10
_TMP_SERIAL = itertools.count()


class BlockCorrupt(Exception):
    """A block failed its checksum (or its header is unreadable): it has been dropped."""


@dataclass(frozen=True)
class Header:
    data_len: int
    page_bytes: int
    crcs: tuple[int, ...]

    @property
    def size(self) -> int:
        return _FIXED.size + 4 * len(self.crcs)


def encode(data: bytes | bytearray) -> bytes:
    """The header of a block holding data."""
    with memoryview(data) as view:
        crcs = [crc32c(view[i:i + PAGE_BYTES]) for i in range(0, len(data), PAGE_BYTES)] or [crc32c(b"")]
    return _FIXED.pack(MAGIC, VERSION, len(data), PAGE_BYTES, len(crcs)) + struct.pack(f"<{len(crcs)}I", *crcs)


def decode_header(raw: bytes) -> Header:
    if len(raw) < _FIXED.size:
        raise BlockCorrupt("short header")
    magic, version, data_len, page_bytes, pages = _FIXED.unpack_from(raw)
    if magic != MAGIC or version != VERSION or page_bytes <= 0 or pages != max(1, -(-data_len // page_bytes)):
        raise BlockCorrupt("bad header")
    if len(raw) < _FIXED.size + 4 * pages:
        raise BlockCorrupt("short checksum table")
    return Header(data_len, page_bytes, struct.unpack_from(f"<{pages}I", raw, _FIXED.size))


@dataclass
class CheckReport:
    kept: int = 0
    dropped_corrupt: int = 0
    dropped_partial: int = 0
    dropped_orphan: int = 0


class BlockStore:
    def __init__(self, directory: Path, capacity_bytes: int, policy: str = "lru") -> None:
        self.directory = Path(directory)
        self.capacity_bytes = capacity_bytes
        self.policy: EvictionPolicy = POLICIES[policy]()
        self._sizes: dict[str, int] = {}  # block id -> bytes on disk
        self._headers: dict[str, Header] = {}
        self.used_bytes = 0
        self.reserved_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._dir_str = str(self.directory)
        self.listener: Callable[[str, bool], None] | None = None  # (block id, now held?): the placement map
        self.failing: str | None = None  # why blocks cannot be written now (disk full...), None while they can
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)

    # ---- layout --------------------------------------------------------------------------------

    def path(self, block_id: str) -> str:
        return f"{self._dir_str}/{block_id[:2]}/{block_id}"

    def __contains__(self, block_id: str) -> bool:
        return block_id in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    # ---- start-up ------------------------------------------------------------------------------

    def load(self) -> int:
        """Rebuild the index from disk (oldest access first, so LRU order survives); returns blocks found."""
        shutil.rmtree(self.directory / "tmp", ignore_errors=True)  # writes a crash left half done
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        found = []
        for sub in self.directory.iterdir():
            if not sub.is_dir() or sub.name == "tmp":
                continue
            for entry in os.scandir(sub):
                if len(entry.name) == 64 and entry.name[:2] == sub.name:
                    st = entry.stat()
                    found.append((st.st_atime, entry.name, st.st_size))
        for _, block_id, size in sorted(found):
            self._add(block_id, size)
        while self.used_bytes > self.capacity_bytes and self._evict_one():
            pass  # the capacity shrank since last run
        return len(self._sizes)

    def check(self) -> CheckReport:
        """Verify every block file; drop orphans (unknown names), partial writes and corrupt blocks."""
        report = CheckReport()
        for leftover in (self.directory / "tmp").iterdir():
            leftover.unlink(missing_ok=True)
            report.dropped_partial += 1
        for sub in self.directory.iterdir():
            if sub.name == "tmp" or not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                block_id = entry.name
                if len(block_id) != 64 or block_id[:2] != sub.name:
                    os.unlink(entry.path)
                    report.dropped_orphan += 1
                    continue
                try:
                    with open(entry.path, "rb") as fh:
                        raw = fh.read()
                    header = decode_header(raw)
                    data = raw[header.size:]
                    if len(data) != header.data_len:
                        raise BlockCorrupt("length")
                    for index, crc in enumerate(header.crcs):
                        if crc32c(data[index * header.page_bytes:(index + 1) * header.page_bytes]) != crc:
                            raise BlockCorrupt(f"page {index}")
                    report.kept += 1
                except BlockCorrupt as exc:
                    log.warning("check: dropping corrupt block %s (%s)", block_id, exc)
                    self.remove(block_id)
                    Path(entry.path).unlink(missing_ok=True)
                    report.dropped_corrupt += 1
        return report

    # ---- index ---------------------------------------------------------------------------------

    def _add(self, block_id: str, size: int) -> None:
        if block_id in self._sizes:
            self.used_bytes -= self._sizes[block_id]
            self.policy.remove(block_id)
        self._sizes[block_id] = size
        self.used_bytes += size
        self.policy.insert(block_id, size)
        if self.listener is not None:
            self.listener(block_id, True)

    def remove(self, block_id: str) -> bool:
        size = self._sizes.pop(block_id, None)
        self._headers.pop(block_id, None)
        if size is None:
            return False
        self.used_bytes -= size
        self.policy.remove(block_id)
        if self.listener is not None:
            self.listener(block_id, False)
        try:
            os.unlink(self.path(block_id))
        except FileNotFoundError:
            pass
        return True

    def _evict_one(self) -> str | None:
        victim = self.policy.victim()
        if victim is None:
            return None
        self.remove(victim)
        self.evictions += 1
        return victim

    # ---- reads ---------------------------------------------------------------------------------

    async def read(self, block_id: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of a cached block, every touched page verified; KeyError if not cached."""
        if block_id not in self._sizes:
            raise KeyError(block_id)
        try:
            fd = os.open(self.path(block_id), os.O_RDONLY)
        except FileNotFoundError:
            self.remove(block_id)
            raise KeyError(block_id) from None
        try:
            header = self._headers.get(block_id)
            if header is None:
                raw = await pread(fd, _FIXED.size + 4 * 1024, 0)
                header = decode_header(bytes(raw))
                self._headers[block_id] = header
            if end > header.data_len or start > end:
                raise BlockCorrupt("range outside the block")
            first = start // header.page_bytes
            last = (end - 1) // header.page_bytes if end > start else first - 1  # an empty range: no page
            offset = first * header.page_bytes
            length = min(header.data_len, (last + 1) * header.page_bytes) - offset
            data = await pread(fd, length, header.size + offset)
            if len(data) != length:
                raise BlockCorrupt("short read")
            view = memoryview(data)
            for page in range(first, last + 1):
                lo = (page - first) * header.page_bytes
                if crc32c(view[lo:lo + header.page_bytes]) != header.crcs[page]:
                    raise BlockCorrupt(f"page {page} checksum mismatch")
        except BlockCorrupt:
            log.warning("block %s is corrupt: dropped, it will be fetched again", block_id)
            self.remove(block_id)
            raise
        finally:
            os.close(fd)
        self.policy.touch(block_id)
        return bytes(view[start - offset:end - offset])

    # ---- writes --------------------------------------------------------------------------------

    def reserve(self, size: int) -> bool:
        """Make room for size more bytes, evicting as needed; False when it cannot fit at all."""
        if size > self.capacity_bytes:
            return False
        while self.used_bytes + self.reserved_bytes + size > self.capacity_bytes:
            if self._evict_one() is None:
                return False
        self.reserved_bytes += size
        return True

    async def write(self, block_id: str, data: bytes | bytearray) -> bool:
        """Store a block; False when it was not cached (no room, disk full): the caller serves it anyway."""
        header = encode(data)
        size = len(header) + len(data)
        if block_id in self._sizes or not self.reserve(size):
            return block_id in self._sizes
        tmp = f"{self._dir_str}/tmp/{block_id}.{next(_TMP_SERIAL)}.{os.getpid()}"  # unique: workers may share a dir
        try:
            if size <= _INLINE_WRITE_BYTES:
                self._write_file(tmp, block_id, header, data)
            else:
                await asyncio.to_thread(self._write_file, tmp, block_id, header, data)
        except OSError as exc:
            self._unwritable(exc)
            return False
        finally:
            self.reserved_bytes -= size
        if self.failing is not None:
            log.warning("cache directory %s writable again: caching resumed", self._dir_str)
            self.failing = None
        self._add(block_id, size)
        return True

    def _unwritable(self, exc: OSError) -> None:
        """A block could not be written: said once per cause (the blocks are served uncached meanwhile, and every
        write tries again, so caching resumes by itself once the disk has room or the directory is back)."""
        cause = _WRITE_FAILURES.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        if cause != self.failing:
            self.failing = cause
            log.warning("cache directory %s: %s (%s): blocks are served without being cached until it can be "
                        "written again", self._dir_str, cause, exc.strerror)

    def _write_file(self, tmp: str, block_id: str, header: bytes, data: bytes | bytearray) -> None:
        try:
            try:
                fh = open(tmp, "wb")
            except FileNotFoundError:  # the cache directory was removed under this worker: make it again
                log.warning("cache directory %s was removed: made again (blocks it held are fetched again as they "
                            "are read)", self._dir_str)
                os.makedirs(f"{self._dir_str}/tmp", exist_ok=True)
                fh = open(tmp, "wb")
            with fh:
                fh.write(header)
                fh.write(data)
            try:
                os.replace(tmp, self.path(block_id))
            except FileNotFoundError:  # the first block of its <id[:2]> directory
                os.makedirs(f"{self._dir_str}/{block_id[:2]}", exist_ok=True)
                os.replace(tmp, self.path(block_id))
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def ids(self) -> list[str]:
        return list(self._sizes)

    def stats(self) -> dict[str, float]:
        return {"blocks": len(self._sizes), "used_bytes": self.used_bytes, "capacity_bytes": self.capacity_bytes,
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions, "time": time.time()}
