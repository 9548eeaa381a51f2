"""Multipart uploads on the directory under storage, staged inside the bucket's system directory.

``.s3cache/uploads/<id>/upload.json`` holds what CreateMultipartUpload was told; each part is a file
``part-NNNNN`` with a ``part-NNNNN.json`` beside it (written after the part, so a listed part is whole).
State lives on disk only, so an upload survives a restart and any process serving the directory can
continue it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from cache.s3.errors import S3Error
from cache.s3.model import (
    MIN_PART_SIZE_BYTES,
    NewObject,
    ObjectMeta,
    PartInfo,
    UploadInfo,
    WriteConditions,
)
from cache.s3.names import check_key
from cache.storage.base import Body, OpenObject
from cache.storage.directory.layout import (
    BucketPaths,
    HashingWriter,
    check_no_links,
    read_sidecar,
    record_for,
    remove_quietly,
)

_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_COPY_CHUNK_BYTES = 8 << 20


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": upload_id})


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _concatenate(paths: list[Path], target: Path, fsync: bool) -> None:
    with open(target, "wb") as out:
        for path in paths:
            with open(path, "rb", opener=_nofollow) as part:  # a part that is a link is not a part we wrote
                shutil.copyfileobj(part, out, _COPY_CHUNK_BYTES)
        if fsync:
            out.flush()
            os.fsync(out.fileno())


class UploadHost(Protocol):
    """What multipart needs of the store it serves: its buckets, its placement and condition checks, its commit."""

    fsync: bool

    def existing_bucket(self, bucket: str) -> BucketPaths: ...
    def check_placeable(self, paths: BucketPaths, key: str) -> None: ...
    async def open_object(self, bucket: str, key: str) -> OpenObject: ...
    async def check_conditions(self, bucket: str, key: str, conditions: WriteConditions) -> None: ...
    def commit(self, bucket: str, paths: BucketPaths, key: str, tmp: Path, record: dict[str, Any]) -> ObjectMeta: ...


class Uploads:
    """Multipart calls of a directory store, which delegates them here and lends its bucket and commit helpers."""

    def __init__(self, store: UploadHost) -> None:
        self.store = store

    def _upload_dir(self, bucket: str, key: str, upload_id: str) -> tuple[BucketPaths, Path, dict[str, Any]]:
        paths = self.store.existing_bucket(bucket)
        if not _UPLOAD_ID_RE.match(upload_id):
            raise _no_such_upload(upload_id)
        directory = paths.uploads / upload_id
        check_no_links(paths, str(directory))
        record = read_sidecar(directory / "upload.json")
        if record is None or record.get("key") != key:
            raise _no_such_upload(upload_id)
        return paths, directory, record

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        check_key(key)
        paths = self.store.existing_bucket(bucket)
        self.store.check_placeable(paths, key)
        upload_id = uuid.uuid4().hex
        directory = paths.uploads / upload_id
        check_no_links(paths, str(directory))
        directory.mkdir(parents=True)
        record = {
            "key": key, "initiated": time.time(), "initiator": initiator,
            "headers": new.headers, "user": new.user_metadata, "tags": new.tags,
        }
        tmp = directory / "upload.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, directory / "upload.json")
        return upload_id

    async def _store_part(self, directory: Path, number: int, writer: HashingWriter) -> PartInfo:
        etag = await writer.finish()
        name = f"part-{number:05d}"
        os.replace(writer.path, directory / name)
        now = time.time()
        info = {"etag": etag, "size": writer.size, "time": now}
        tmp = directory / f"{name}.json.tmp"
        tmp.write_text(json.dumps(info))
        os.replace(tmp, directory / f"{name}.json")
        return PartInfo(number, writer.size, etag, now)

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None
    ) -> PartInfo:
        paths, directory, _ = self._upload_dir(bucket, key, upload_id)
        writer = HashingWriter(paths.new_tmp(), self.store.fsync)
        try:
            async for chunk in body:
                await writer.feed(chunk)
            return await self._store_part(directory, number, writer)
        except BaseException:
            writer.discard()
            raise

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str,
        start: int, end: int,
    ) -> PartInfo:
        paths, directory, _ = self._upload_dir(bucket, key, upload_id)
        source = await self.store.open_object(src_bucket, src_key)
        writer = HashingWriter(paths.new_tmp(), self.store.fsync)
        try:
            async for chunk in source.iter_range(start, end, 4 << 20):
                await writer.feed(chunk)
            return await self._store_part(directory, number, writer)
        except BaseException:
            writer.discard()
            raise
        finally:
            source.close()

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        _, directory, _ = self._upload_dir(bucket, key, upload_id)
        parts = []
        for entry in os.scandir(directory):
            if entry.name.startswith("part-") and entry.name.endswith(".json") and not entry.is_symlink():
                info = read_sidecar(Path(entry.path))
                if info is not None:
                    parts.append(PartInfo(int(entry.name[5:10]), int(info["size"]), str(info["etag"]), float(info["time"])))
        return sorted(parts, key=lambda p: p.number)

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]],
        conditions: WriteConditions,
    ) -> ObjectMeta:
        paths, directory, record = self._upload_dir(bucket, key, upload_id)
        if not parts:
            raise S3Error("MalformedXML", "You must specify at least one part")
        numbers = [number for number, _ in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error("InvalidPartOrder", extra={"UploadId": upload_id})
        stored = {part.number: part for part in await self.list_parts(bucket, key, upload_id)}
        digest = hashlib.md5()
        for index, (number, etag) in enumerate(parts):
            part = stored.get(number)
            if part is None or etag.strip('"') != part.etag:
                raise S3Error("InvalidPart", extra={"UploadId": upload_id, "PartNumber": str(number),
                                                    "ETag": etag})
            if index < len(parts) - 1 and part.size < MIN_PART_SIZE_BYTES:
                raise S3Error("EntityTooSmall", extra={"ProposedSize": str(part.size),
                                                       "MinSizeAllowed": str(MIN_PART_SIZE_BYTES),
                                                       "PartNumber": str(number), "ETag": part.etag})
            digest.update(bytes.fromhex(part.etag))
        await self.store.check_conditions(bucket, key, conditions)
        tmp = paths.new_tmp()
        try:
            await asyncio.to_thread(
                _concatenate, [directory / f"part-{n:05d}" for n in numbers], tmp, self.store.fsync)
        except BaseException:
            remove_quietly(tmp)
            raise
        new = NewObject(record.get("headers", {}), record.get("user", {}), record.get("tags", {}))
        meta = self.store.commit(bucket, paths, key, tmp, record_for(f"{digest.hexdigest()}-{len(parts)}", new, len(parts)))
        await asyncio.to_thread(shutil.rmtree, directory, True)
        return meta

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        _, directory, _ = self._upload_dir(bucket, key, upload_id)
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        paths = self.store.existing_bucket(bucket)
        uploads = []
        check_no_links(paths, str(paths.uploads))
        if paths.uploads.is_dir():
            for entry in os.scandir(paths.uploads):
                if entry.is_symlink():
                    continue
                record = read_sidecar(Path(entry.path) / "upload.json")
                if record is not None:
                    uploads.append(UploadInfo(record["key"], entry.name, record["initiated"], record["initiator"]))
        return sorted(uploads, key=lambda u: (u.key, u.initiated))
