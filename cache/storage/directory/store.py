"""The directory under storage: a local directory whose sub-directories are buckets.

Keys map to paths under the bucket directory; "dir/" marker objects are directories. An empty
directory reads as a 0-byte "dir/" object (as in Alluxio), a non-empty one only as a common prefix
unless a marker was written for it. Deleting the last object of an implicit directory removes the
directory, so deleted objects leave no phantom "dir/" behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from cache.fileio import pread
from cache.s3.checksums import FULL_OBJECT, type_of
from cache.s3.conditions import judge
from cache.s3.errors import S3Error, no_such_bucket, no_such_key
from cache.s3.model import (
    UNCONDITIONAL,
    BucketInfo,
    ListPage,
    NewObject,
    ObjectMeta,
    WriteConditions,
)
from cache.s3.names import RESERVED_DIR, bucket_name_error, check_bucket, check_key
from cache.storage.base import Body, DelegatedMultipart, OpenObject, UnderStore
from cache.storage.directory import walk as dirlist
from cache.storage.directory.layout import (
    EMPTY_MD5,
    BucketPaths,
    EmptyObject,
    HashingWriter,
    MemoryObject,
    OpenFile,
    check_fd,
    check_no_links,
    check_reachable,
    link_refused,
    meta_from_record,
    read_sidecar,
    record_for,
    remove_quietly,
    stamp_of,
    storage_error,
    write_sidecar,
)
from cache.storage.directory.locks import FileLocks
from cache.storage.directory.memory import SMALL_OBJECT_BYTES
from cache.storage.directory.metadata import KnownObjects
from cache.storage.directory.multipart import Uploads
from cache.storage.directory.place import check_placeable, conflict, place
from cache.storage.locks import current_or_none


class DirectoryStore(DelegatedMultipart):  # multipart: staged by cache.storage.directory.multipart
    def __init__(self, root: Path, fsync: bool = False, bucket_dirs: dict[str, Path] | None = None,
                 write_lock_wait_s: float = 10.0) -> None:
        """root holds one directory per bucket; bucket_dirs pins named buckets elsewhere (file:// mounts)."""
        self.root = Path(root).resolve()
        self.fsync = fsync
        self.locks = FileLocks(write_lock_wait_s)  # every commit and delete holds its key, in any process
        self.root.mkdir(parents=True, exist_ok=True)
        self._uploads = Uploads(self)
        self._buckets: dict[str, BucketPaths] = {
            name: BucketPaths(Path(directory).resolve()) for name, directory in (bucket_dirs or {}).items()}
        self._known = KnownObjects()  # what is known of each recently used object

    # ---- buckets -------------------------------------------------------------------------------

    def paths_of(self, bucket: str) -> BucketPaths:
        """The paths of a validly named bucket, whether or not it exists (no syscall)."""
        paths = self._buckets.get(bucket)
        if paths is None:
            check_bucket(bucket)
            paths = self._buckets[bucket] = BucketPaths(self.root / bucket)
        return paths

    def existing_bucket(self, bucket: str) -> BucketPaths:
        paths = self.paths_of(bucket)
        try:
            st = os.lstat(paths.root_str)
        except OSError:
            raise no_such_bucket(bucket) from None
        if stat.S_ISLNK(st.st_mode):  # data/b -> /elsewhere: every key of it is outside the data directory
            raise link_refused(f"bucket {bucket}")
        if not stat.S_ISDIR(st.st_mode):
            raise no_such_bucket(bucket)
        check_no_links(paths, str(paths.system))
        return paths

    async def list_buckets(self) -> list[BucketInfo]:
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir() and not entry.is_symlink() and bucket_name_error(entry.name) is None:
                found.append(BucketInfo(entry.name, entry.stat().st_mtime))
        return found

    async def head_bucket(self, bucket: str) -> None:
        self.existing_bucket(bucket)

    async def create_bucket(self, bucket: str) -> None:
        paths = self.paths_of(bucket)
        try:
            paths.root.mkdir()
        except FileExistsError:
            raise S3Error("BucketAlreadyOwnedByYou", extra={"BucketName": bucket}) from None

    async def delete_bucket(self, bucket: str) -> None:
        paths = self.existing_bucket(bucket)
        if any(entry.name != RESERVED_DIR for entry in os.scandir(paths.root)):
            raise S3Error("BucketNotEmpty", extra={"BucketName": bucket})
        await asyncio.to_thread(shutil.rmtree, paths.system, True)
        try:
            paths.root.rmdir()
        except OSError:
            raise S3Error("BucketNotEmpty", extra={"BucketName": bucket}) from None
        self._known.clear()

    def _bucket_tags_path(self, paths: BucketPaths) -> Path:
        return paths.system / "bucket-tags.json"

    async def get_bucket_tags(self, bucket: str) -> dict[str, str]:
        record = read_sidecar(self._bucket_tags_path(self.existing_bucket(bucket)))
        return dict(record or {})

    async def put_bucket_tags(self, bucket: str, tags: dict[str, str] | None) -> None:
        path = self._bucket_tags_path(self.existing_bucket(bucket))
        if tags is None:
            remove_quietly(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tags))
        os.replace(tmp, path)

    # ---- reads: what is known of each object is kept by cache.storage.directory.metadata --------

    def _missing(self, bucket: str, key: str) -> S3Error:
        """Why a key's path is absent: the bucket (checked only now, off the hot path) or the key."""
        self.existing_bucket(bucket)
        return no_such_key(key)

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        check_key(key)
        paths = self.paths_of(bucket)
        check_reachable(paths, paths.data_str(key), key)
        try:
            st = os.stat(paths.data_str(key))
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(bucket, key) from None
        except OSError as exc:
            raise storage_error(exc) from exc
        if key.endswith("/"):
            if not stat.S_ISDIR(st.st_mode):
                raise no_such_key(key)
            return self._known.marker_meta(paths, key, st)
        if not stat.S_ISREG(st.st_mode):
            raise no_such_key(key)
        return await self._known.meta(bucket, paths, key, st)

    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> OpenObject:
        if key.endswith("/"):
            return EmptyObject(await self.head_object(bucket, key))
        check_key(key)
        paths = self.paths_of(bucket)
        path = paths.data_str(key)
        held = self._known.held(bucket, key)
        if held is not None:  # a small hot object: one stat proves the bytes in memory are current
            try:
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                raise self._missing(bucket, key) from None
            if stamp_of(st) == held[0]:
                meta = self._known.meta_for(bucket, paths, key, st, may_hash=False)
                if meta is not None:
                    return MemoryObject(meta, held[1])
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(bucket, key) from None
        except OSError as exc:
            raise storage_error(exc) from exc
        try:
            check_fd(paths, fd, path, key)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise no_such_key(key)
            meta = await self._known.meta(bucket, paths, key, st)
            if meta.size > SMALL_OBJECT_BYTES:
                return OpenFile(meta, fd)  # the OpenFile owns fd from here
            data = bytes(await pread(fd, meta.size, 0)) if meta.size else b""
            if len(data) == meta.size and stamp_of(os.fstat(fd)) == stamp_of(st):
                self._known.hold(bucket, key, stamp_of(st), data)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return MemoryObject(meta, data)

    def _part_span(self, bucket: str, meta: ObjectMeta, number: int) -> tuple[int, int]:
        """Where part number lies in the object. An object not uploaded in parts is its own part 1 (as S3 answers);
        a multipart object's parts are the sizes its completion recorded. A multipart object completed before
        s3cache recorded them (its part files are gone by then) answers 400 InvalidRequest: only what is known is
        answered, never a guessed split (a Range read serves any of its bytes)."""
        if meta.parts_count is None:
            if number != 1:
                raise S3Error("InvalidPartNumber")
            return 0, meta.size
        if number > meta.parts_count:
            raise S3Error("InvalidPartNumber")
        sizes = self._known.part_sizes(self.paths_of(bucket), meta.key, meta)
        if sizes is None:
            raise S3Error("InvalidRequest", "The part sizes of this multipart object are not known (it was completed "
                          "before s3cache recorded them): read it by Range")
        start = sum(sizes[:number - 1])
        return start, start + sizes[number - 1]

    async def head_part(self, bucket: str, key: str, number: int) -> tuple[ObjectMeta, int, int]:
        meta = await self.head_object(bucket, key)
        start, end = self._part_span(bucket, meta, number)
        return meta, start, end

    async def open_part(self, bucket: str, key: str, number: int) -> tuple[OpenObject, int, int]:
        opened = await self.open_object(bucket, key)
        try:
            start, end = self._part_span(bucket, opened.meta, number)
        except BaseException:
            opened.close()
            raise
        return opened, start, end

    # ---- writes --------------------------------------------------------------------------------

    async def check_conditions(self, bucket: str, key: str, conditions: WriteConditions) -> None:
        """Judge conditions against the key's object: early (before a body is read), then again at the commit."""
        if conditions.given:
            judge(conditions, key, await current_or_none(lambda: self.head_object(bucket, key)))

    async def commit(self, bucket: str, paths: BucketPaths, key: str, tmp: Path, record: dict[str, Any],
                     conditions: WriteConditions) -> ObjectMeta:
        """Move a complete temp file into place and write its sidecar, the key held (in every process serving the
        directory), so a conditional write is judged and done with no other write of the key in between."""
        try:
            async with self.locks.hold(paths, key):
                await self.check_conditions(bucket, key, conditions)
                return self._commit(bucket, paths, key, tmp, record, conditions.if_none_match == "*")
        except BaseException:
            remove_quietly(tmp)
            raise

    def _commit(self, bucket: str, paths: BucketPaths, key: str, tmp: Path, record: dict[str, Any],
                create: bool) -> ObjectMeta:
        target = place(paths, key, tmp, create)
        st = os.stat(target)
        record["stamp"] = stamp_of(st)
        write_sidecar(paths, key, record)
        meta = meta_from_record(key, record, st)
        self._known.remember(bucket, key, record["stamp"], self._known.sidecar_stamp(paths, key), meta)
        return meta

    async def _write_marker(self, bucket: str, paths: BucketPaths, key: str, new: NewObject,
                            conditions: WriteConditions) -> ObjectMeta:
        target = paths.data(key)
        check_reachable(paths, str(target), key)
        async with self.locks.hold(paths, key):
            await self.check_conditions(bucket, key, conditions)
            try:
                target.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise conflict(key) from None
            write_sidecar(paths, key, record_for(EMPTY_MD5, new))
        return await self.head_object(bucket, key)

    async def put_object(
        self, bucket: str, key: str, body: Body, new: NewObject, conditions: WriteConditions, size: int | None = None
    ) -> ObjectMeta:
        check_key(key)
        paths = self.existing_bucket(bucket)
        check_placeable(paths, key)
        await self.check_conditions(bucket, key, conditions)
        writer = HashingWriter(paths.new_tmp(), self.fsync)
        try:
            async for chunk in body:
                if chunk:
                    if key.endswith("/"):
                        raise S3Error("InvalidRequest", "Keys ending in '/' are directories here and must be empty")
                    await writer.feed(chunk)
            etag = await writer.finish()
        except BaseException:
            writer.discard()
            raise
        if key.endswith("/"):
            writer.discard()
            return await self._write_marker(bucket, paths, key, new, conditions)
        return await self.commit(bucket, paths, key, writer.path, record_for(etag, new), conditions)

    async def copy_object(
        self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None, tags: dict[str, str] | None,
        conditions: WriteConditions = UNCONDITIONAL,
    ) -> ObjectMeta:
        source = await self.open_object(src_bucket, src_key)
        check_key(key)
        paths = self.existing_bucket(bucket)
        check_placeable(paths, key)
        src = source.meta
        if new is None:  # a checksum of the bytes goes along; a composite one (of the source's parts) cannot
            kept = src.checksums if type_of(src.checksums, src.checksum_type, src.etag) == FULL_OBJECT else {}
            new = NewObject(headers=src.headers, user_metadata=src.user_metadata, checksums=kept)
        new = NewObject(new.headers, new.user_metadata, src.tags if tags is None else tags, new.checksums)
        if key.endswith("/"):
            source.close()
            return await self._write_marker(bucket, paths, key, new, conditions)
        writer = HashingWriter(paths.new_tmp(), self.fsync)
        try:
            async for chunk in source.iter_range(0, src.size, 4 << 20):
                await writer.feed(chunk)
            etag = await writer.finish()
        except BaseException:
            writer.discard()
            raise
        finally:
            source.close()
        return await self.commit(bucket, paths, key, writer.path, record_for(etag, new), conditions)

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        return (await self.head_object(bucket, key)).tags

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        meta = await self.head_object(bucket, key)
        paths = self.existing_bucket(bucket)
        record = read_sidecar(paths.meta(key)) or {"etag": meta.etag}
        record["tags"] = tags
        write_sidecar(paths, key, record)
        self._known.forget(bucket, key)

    async def delete_objects(
        self, bucket: str, keys: list[str], if_match: list[str | None] | None = None,
    ) -> list[S3Error | None]:
        outcomes: list[S3Error | None] = []
        for key, etag in zip(keys, if_match or [None] * len(keys), strict=True):  # a few syscalls each: one by one
            try:
                await self.delete_object(bucket, key, WriteConditions(if_match=etag))
                outcomes.append(None)
            except S3Error as error:
                outcomes.append(error)
        return outcomes

    async def delete_object(self, bucket: str, key: str, conditions: WriteConditions = UNCONDITIONAL) -> None:
        check_key(key)
        paths = self.existing_bucket(bucket)
        target = paths.data(key)
        check_reachable(paths, str(target), key)  # unlink or rmdir through a link would remove what is outside
        async with self.locks.hold(paths, key):
            await self.check_conditions(bucket, key, conditions)
            self._known.forget(bucket, key)
            self._delete(paths, key, target)

    def _delete(self, paths: BucketPaths, key: str, target: Path) -> None:
        try:
            if key.endswith("/"):
                remove_quietly(paths.meta(key))
                if target.is_dir() and not any(True for _ in os.scandir(target)):
                    target.rmdir()
            elif target.is_file() or target.is_symlink():
                target.unlink()
                remove_quietly(paths.meta(key))
            else:
                return  # deleting what is not there succeeds, as in S3
        except FileNotFoundError:
            return
        except OSError as exc:
            raise storage_error(exc) from exc
        self._prune_empty_parents(paths, target.parent)

    def _prune_empty_parents(self, paths: BucketPaths, directory: Path) -> None:
        while directory != paths.root and paths.root in directory.parents:
            key = str(directory.relative_to(paths.root)) + "/"
            if paths.meta(key).exists():
                return  # an explicit "dir/" marker stays
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or gone): stop climbing
            directory = directory.parent

    # ---- listing -------------------------------------------------------------------------------

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        paths = self.existing_bucket(bucket)
        return await asyncio.to_thread(
            dirlist.list_page, paths, prefix, delimiter, marker, max_keys,
            lambda key, st: self._known.listed_meta(bucket, paths, key, st),
            lambda key, st: self._known.marker_meta(paths, key, st),
        )


_: type[UnderStore] = DirectoryStore  # mypy proves the directory backend speaks the whole protocol
