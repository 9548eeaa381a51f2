"""Disk mechanics of the directory under storage: where things live, atomic commits, fast reads.

Layout of a bucket directory ``<root>/<bucket>``::

    <key path>                         the object's bytes, where a person expects them
    .s3cache/meta/<h[:2]>/<h>.json     its metadata (h = sha256 of the key), stamped with the file's
                                       (size, mtime_ns, inode) so a file changed behind our back is noticed
    .s3cache/tmp/                      writes in flight, renamed into place when complete
    .s3cache/uploads/<upload id>/      multipart staging (survives a restart)

Objects are written to a temp file and renamed into place, so a reader sees the old or the new object,
never a torn one; the sidecar is committed right after and re-validated by its stamp on every read.

Symbolic links: one that stays inside the bucket's directory is followed; one that leads out of it (or into its
``.s3cache``, or a bucket directory that is itself a link) is refused for every read, write, copy, delete and
listing (``check_reachable``, ``check_fd``), and the system directory follows no link at all (``check_no_links``).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cache.fileio import pread
from cache.s3.checksums import Summer
from cache.s3.errors import S3Error
from cache.s3.model import NewObject, ObjectMeta
from cache.s3.names import RESERVED_DIR

EMPTY_MD5 = hashlib.md5(b"").hexdigest()
log = logging.getLogger("s3cache.directory")
WRITE_BUFFER_BYTES = 1 << 20


def stamp_of(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


@dataclass(frozen=True)
class BucketPaths:
    root: Path  # the bucket's directory

    @property
    def system(self) -> Path:
        return self.root / RESERVED_DIR

    @property
    def tmp(self) -> Path:
        return self.system / "tmp"

    @property
    def uploads(self) -> Path:
        return self.system / "uploads"

    def data(self, key: str) -> Path:
        # "dir/" markers are the directory itself; check_key() has ruled out escapes.
        return self.root / key.rstrip("/") if key.endswith("/") else self.root / key

    def meta(self, key: str) -> Path:
        return Path(self.meta_str(key))

    # String forms for the read path: pathlib costs more than the syscalls it wraps.
    @cached_property
    def root_str(self) -> str:
        return str(self.root)

    def data_str(self, key: str) -> str:
        return f"{self.root_str}/{key}"

    def meta_str(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.root_str}/{RESERVED_DIR}/meta/{digest[:2]}/{digest}.json"

    def new_tmp(self) -> Path:
        check_no_links(self, str(self.tmp))
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / uuid.uuid4().hex


def link_refused(what: str) -> S3Error:
    """A key (or bucket) a symbolic link takes out of the bucket's directory. AccessDenied, not NoSuchKey: it is
    what S3 answers for a key that exists but that the caller may not reach (a policy's Deny), for a GET, a PUT and
    a DELETE alike; NoSuchKey would be a lie to a PUT or a DELETE, which S3 never answers with it."""
    log.warning("refused %s: a symbolic link leads out of the bucket's directory", what)
    return S3Error("AccessDenied")


def inside(paths: BucketPaths, real: str) -> bool:
    """real, a resolved path, lies in the bucket's directory and outside its system directory."""
    root = paths.root_str
    return real.startswith(root + "/") and not f"{real}/".startswith(f"{root}/{RESERVED_DIR}/")


def has_link(root: str, path: str) -> bool:
    """Whether the bucket directory root, or any existing component of path below it, is a symbolic link: one
    lstat a component, stopping at the first that does not exist (what is created there is a real directory)."""
    rest = path[len(root) + 1:].rstrip("/") if path.startswith(root + "/") else ""
    current = root
    for part in ["", *rest.split("/")] if rest else [""]:
        if part:
            current = f"{current}/{part}"
        try:
            st = os.lstat(current)
        except OSError:
            return False
        if stat.S_ISLNK(st.st_mode):
            return True
    return False


def check_reachable(paths: BucketPaths, path: str, what: str) -> None:
    """Refuse (AccessDenied) a path under the bucket's directory that a symbolic link takes out of it."""
    if has_link(paths.root_str, path) and not inside(paths, os.path.realpath(path)):
        raise link_refused(what)


def check_no_links(paths: BucketPaths, path: str) -> None:
    """Refuse a system path (staging, sidecars, uploads) with any symbolic link on the way: s3cache makes those
    directories itself and never links them."""
    if has_link(paths.root_str, path):
        raise link_refused(path)


def check_fd(paths: BucketPaths, fd: int, path: str, what: str) -> None:
    """Refuse a file opened through a link that leaves the bucket: the kernel's name of the open file decides, so
    no swap of a link between a check and the open can get past it (without /proc, the path is resolved)."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        check_reachable(paths, path, what)
        return
    if not inside(paths, real.removesuffix(" (deleted)")):
        raise link_refused(what)


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def read_sidecar(path: Path | str) -> dict[str, Any] | None:
    try:
        with open(path, "rb", opener=_nofollow) as fh:  # a sidecar that is a link is foreign: absent
            loaded = json.loads(fh.read())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return None  # a torn or foreign file is treated as absent; the ETag is recomputed
    return loaded if isinstance(loaded, dict) else None


def write_sidecar(paths: BucketPaths, key: str, record: dict[str, Any]) -> None:
    """Atomically replace the sidecar of key."""
    target = paths.meta(key)
    check_no_links(paths, str(target.parent))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = paths.new_tmp()
    tmp.write_bytes(json.dumps(record, separators=(",", ":")).encode())
    os.replace(tmp, target)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass


def meta_from_record(key: str, record: dict[str, Any], st: os.stat_result) -> ObjectMeta:
    return ObjectMeta(
        key=key,
        size=st.st_size if not key.endswith("/") else 0,
        etag=record["etag"],
        last_modified=st.st_mtime,
        headers=record.get("headers", {}),
        user_metadata=record.get("user", {}),
        tags=record.get("tags", {}),
        tag_count=len(record.get("tags", {})),
        checksums=record.get("checksums", {}),
        checksum_type=record.get("checksum_type"),
        parts_count=record.get("parts"),
    )


def record_for(etag: str, new: NewObject, parts: int | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"etag": etag, "headers": new.headers, "user": new.user_metadata, "tags": new.tags}
    if new.checksums:
        record["checksums"] = new.checksums
    if new.checksum_type:
        record["checksum_type"] = new.checksum_type
    if parts:
        record["parts"] = parts
    return record


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(WRITE_BUFFER_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class HashingWriter:
    """Writes a stream to a temp file off the event loop, computing its MD5 on the way (and another checksum, when
    given one: a multipart part's in its upload's algorithm)."""

    def __init__(self, path: Path, fsync: bool, checksum: Summer | None = None) -> None:
        self.path = path
        self.fsync = fsync
        self.md5 = hashlib.md5()
        self.checksum = checksum
        self.size = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def _write(self, data: bytes) -> None:
        self.md5.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def feed(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        self.size += len(chunk)
        if self._pending_bytes >= WRITE_BUFFER_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            try:
                await asyncio.to_thread(self._write, data)
            except OSError as exc:
                raise storage_error(exc) from exc

    async def finish(self) -> str:
        await self.flush()
        if self.fsync:
            await asyncio.to_thread(os.fsync, self._fd)
        os.close(self._fd)
        self._fd = -1
        return self.md5.hexdigest()

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        remove_quietly(self.path)


def storage_error(exc: OSError) -> S3Error:
    if exc.errno == errno.ENOSPC:
        return S3Error("ServiceUnavailable", "The under storage is out of space")
    if exc.errno == errno.ENAMETOOLONG:
        return S3Error("KeyTooLongError")
    return S3Error("InternalError", f"Under storage I/O failed: {exc.strerror}")


class OpenFile:
    """An object opened for reading: the fd is checked against the metadata's stamp."""

    def __init__(self, meta: ObjectMeta, fd: int) -> None:
        self.meta = meta
        self._fd = fd

    async def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        offset = start
        try:
            while offset < end:
                data = await pread(self._fd, min(chunk_bytes, end - offset), offset)
                if not data:
                    raise S3Error("InternalError", "The object changed size while it was read")
                offset += len(data)
                yield data
        finally:
            self.close()

    async def read_small(self, start: int, end: int) -> bytes:
        try:
            return await pread(self._fd, end - start, start) if end > start else b""
        finally:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


class MemoryObject:
    """A small object whose bytes are already in memory."""

    def __init__(self, meta: ObjectMeta, data: bytes) -> None:
        self.meta = meta
        self._data = data

    async def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        for offset in range(start, end, chunk_bytes):
            yield self._data[offset:min(end, offset + chunk_bytes)]

    async def read_small(self, start: int, end: int) -> bytes:
        return self._data if (start, end) == (0, len(self._data)) else self._data[start:end]

    def close(self) -> None:
        pass


class EmptyObject:
    """A "dir/" marker: zero bytes, no file to hold open."""

    def __init__(self, meta: ObjectMeta) -> None:
        self.meta = meta

    async def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        if False:  # pragma: no cover - an async generator that yields nothing
            yield b""

    async def read_small(self, start: int, end: int) -> bytes:
        return b""

    def close(self) -> None:
        pass
