"""Multipart uploads on the directory under storage, staged inside the bucket's system directory.

``.s3cache/uploads/<id>/upload.json`` holds what CreateMultipartUpload was told. Each part is written to a temp
file, renamed to a name of its own (``part-NNNNN.<hex>``), and then made the part by one atomic rename of its
record ``part-NNNNN.json``, which names that file: of two uploads of one part, the one that finishes last is the
part, its bytes and its ETag together, whatever the order they started in (a client re-sending a part whose
first send is still in flight). A record without a file name is of a part staged as ``part-NNNNN``.

The completed object's sidecar records its part count and each part's size (``part_sizes``), which part reads
(GetObject ?partNumber=) serve by. An upload created with a checksum algorithm keeps each part's checksum in it
(computed as the part is written) in the part's record; Complete makes the object's from them and records them in
order (``part_checksums``) for GetObjectAttributes. A completed upload leaves ``completed.json`` (its key, its
part list, its ETag, its checksum) in place of the rest for COMPLETED_KEEP_S, so a Complete retried after a lost
answer is 200 with the same ETag, as S3 answers it.
State lives on disk only, so an upload survives a restart and any process serving the directory can
continue it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from cache.s3.checksums import ALGORITHMS, completed_checksum, part_algorithm
from cache.s3.errors import S3Error
from cache.s3.model import (
    MIN_PART_SIZE_BYTES,
    BodyChecksums,
    NewObject,
    ObjectMeta,
    PartInfo,
    PartListing,
    SentChecksums,
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
from cache.storage.directory.place import check_placeable

_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_COPY_CHUNK_BYTES = 8 << 20
UPLOAD_RECORD = "upload.json"
COMPLETED_RECORD = "completed.json"
COMPLETED_KEEP_S = 3600.0  # how long a completed upload still answers a repeated Complete
_SWEEP_EVERY_S = 60.0  # completed records older than COMPLETED_KEEP_S are looked for at most this often


def _no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", extra={"UploadId": upload_id})


def _nofollow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _write_record(directory: Path, name: str, record: dict[str, Any], tmp: Path) -> None:
    """Atomically replace directory/name with record, written first to tmp (a name no other writer uses)."""
    tmp.write_text(json.dumps(record))
    try:
        os.replace(tmp, directory / name)
    except BaseException:
        remove_quietly(tmp)
        raise


def _retire(directory: Path) -> None:
    """Everything of a completed upload but its completion record: the upload record first (so nothing can
    continue it), then the parts."""
    remove_quietly(directory / UPLOAD_RECORD)
    for entry in os.scandir(directory):
        if entry.name != COMPLETED_RECORD:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, True)
            else:
                remove_quietly(Path(entry.path))


def _sweep(uploads: Path, now: float) -> None:
    """Remove the uploads completed more than COMPLETED_KEEP_S ago."""
    try:
        entries = list(os.scandir(uploads))
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink() or not _UPLOAD_ID_RE.match(entry.name):
            continue
        try:
            completed = os.stat(Path(entry.path) / COMPLETED_RECORD, follow_symlinks=False).st_mtime
        except OSError:
            continue
        if now - completed > COMPLETED_KEEP_S:
            shutil.rmtree(entry.path, True)


def _part_list(parts: list[tuple[int, str]]) -> list[list[Any]]:
    return [[number, etag.strip().strip('"')] for number, etag in parts]


def _concatenate(paths: list[Path], target: Path, fsync: bool) -> None:
    with open(target, "wb") as out:
        for path in paths:
            with open(path, "rb", opener=_nofollow) as part:  # a part that is a link is not a part we wrote
                shutil.copyfileobj(part, out, _COPY_CHUNK_BYTES)
        if fsync:
            out.flush()
            os.fsync(out.fileno())


def _writer(paths: BucketPaths, fsync: bool, algorithm: str | None) -> HashingWriter:
    """A part's writer, which computes the part's checksum in the upload's algorithm too (S3 keeps one per part)."""
    return HashingWriter(paths.new_tmp(), fsync, ALGORITHMS[algorithm].new() if algorithm in ALGORITHMS else None)


class UploadHost(Protocol):
    """What multipart needs of the store it serves: its buckets, its condition check, its commit."""

    fsync: bool

    def existing_bucket(self, bucket: str) -> BucketPaths: ...
    async def open_object(self, bucket: str, key: str) -> OpenObject: ...
    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta: ...
    async def check_conditions(self, bucket: str, key: str, conditions: WriteConditions) -> None: ...
    async def commit(self, bucket: str, paths: BucketPaths, key: str, tmp: Path, record: dict[str, Any],
                     conditions: WriteConditions) -> ObjectMeta: ...


class Uploads:
    """Multipart calls of a directory store, which delegates them here and lends its bucket and commit helpers."""

    def __init__(self, store: UploadHost) -> None:
        self.store = store
        self._next_sweep = 0.0

    def _upload_path(self, bucket: str, upload_id: str) -> tuple[BucketPaths, Path]:
        paths = self.store.existing_bucket(bucket)
        if not _UPLOAD_ID_RE.match(upload_id):
            raise _no_such_upload(upload_id)
        directory = paths.uploads / upload_id
        check_no_links(paths, str(directory))
        return paths, directory

    def _upload_dir(self, bucket: str, key: str, upload_id: str) -> tuple[BucketPaths, Path, dict[str, Any]]:
        paths, directory = self._upload_path(bucket, upload_id)
        record = read_sidecar(directory / UPLOAD_RECORD)
        if record is None or record.get("key") != key:
            raise _no_such_upload(upload_id)
        return paths, directory, record

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        check_key(key)
        paths = self.store.existing_bucket(bucket)
        check_placeable(paths, key)
        upload_id = uuid.uuid4().hex
        directory = paths.uploads / upload_id
        check_no_links(paths, str(directory))
        directory.mkdir(parents=True)
        record = {
            "key": key, "initiated": time.time(), "initiator": initiator,
            "headers": new.headers, "user": new.user_metadata, "tags": new.tags,
            "checksum_algorithm": new.checksum_algorithm, "checksum_type": new.checksum_type,
        }
        _write_record(directory, UPLOAD_RECORD, record, directory / f"{UPLOAD_RECORD}.tmp")
        return upload_id

    async def _store_part(self, paths: BucketPaths, directory: Path, upload_id: str, number: int,
                          writer: HashingWriter, algorithm: str | None) -> PartInfo:
        """Make a written part the part: its bytes under a name of its own, then its record naming them, in one
        rename (the last to finish wins, bytes and ETag together); the bytes it replaces are removed."""
        etag = await writer.finish()
        checksum = base64.b64encode(writer.checksum.digest()).decode() if writer.checksum is not None else None
        name = f"part-{number:05d}"
        data = f"{name}.{writer.path.name}"  # the temp file's name is unique: so is this
        try:
            os.replace(writer.path, directory / data)
        except FileNotFoundError:  # the upload was completed or aborted meanwhile
            raise _no_such_upload(upload_id) from None
        previous = read_sidecar(directory / f"{name}.json")
        now = time.time()
        try:
            _write_record(directory, f"{name}.json", {"etag": etag, "size": writer.size, "time": now, "file": data,
                                                      "checksum": checksum}, paths.new_tmp())
        except FileNotFoundError:
            remove_quietly(directory / data)
            raise _no_such_upload(upload_id) from None
        if previous is not None:  # never the file just named: each file is named by one record only
            remove_quietly(directory / str(previous.get("file", name)))
        return PartInfo(number, writer.size, etag, now, {algorithm: checksum} if algorithm and checksum else {})

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, size: int | None = None,
        checksums: BodyChecksums | None = None,
    ) -> PartInfo:
        paths, directory, record = self._upload_dir(bucket, key, upload_id)
        algorithm = part_algorithm(record.get("checksum_algorithm"), checksums)
        writer = _writer(paths, self.store.fsync, algorithm)
        try:
            async for chunk in body:
                await writer.feed(chunk)
            return await self._store_part(paths, directory, upload_id, number, writer, algorithm)
        except BaseException:
            writer.discard()
            raise

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str, src_key: str,
        start: int, end: int,
    ) -> PartInfo:
        paths, directory, record = self._upload_dir(bucket, key, upload_id)
        source = await self.store.open_object(src_bucket, src_key)
        algorithm = record.get("checksum_algorithm")
        writer = _writer(paths, self.store.fsync, algorithm)
        try:
            async for chunk in source.iter_range(start, end, 4 << 20):
                await writer.feed(chunk)
            return await self._store_part(paths, directory, upload_id, number, writer, algorithm)
        except BaseException:
            writer.discard()
            raise
        finally:
            source.close()

    @staticmethod
    def _parts(directory: Path, algorithm: str | None) -> dict[int, tuple[PartInfo, Path]]:
        """The parts of an upload by number, each with the file holding its bytes."""
        parts = {}
        for entry in os.scandir(directory):
            if entry.name.startswith("part-") and entry.name.endswith(".json") and not entry.is_symlink():
                info = read_sidecar(Path(entry.path))
                if info is not None:
                    number = int(entry.name[5:10])
                    checksum = info.get("checksum")
                    part = PartInfo(number, int(info["size"]), str(info["etag"]), float(info["time"]),
                                    {algorithm: str(checksum)} if algorithm and checksum else {})
                    parts[number] = (part, directory / str(info.get("file", entry.name[:10])))
        return parts

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing:
        _, directory, record = self._upload_dir(bucket, key, upload_id)
        algorithm = record.get("checksum_algorithm")
        parts = [part for part, _ in sorted(self._parts(directory, algorithm).values(), key=lambda p: p[0].number)]
        return PartListing(parts, algorithm, record.get("checksum_type"))

    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        """From the sidecar Complete wrote, when it is of the object there now (its ETag and part count)."""
        meta = await self.store.head_object(bucket, key)
        record = read_sidecar(self.store.existing_bucket(bucket).meta_str(meta.key))
        sizes = record.get("part_sizes") if record is not None else None
        if record is None or record.get("etag") != meta.etag or not isinstance(sizes, list) \
                or len(sizes) != meta.parts_count:
            return []
        checksums = record.get("part_checksums") or [None] * len(sizes)
        algorithm = next(iter(meta.checksums), None)
        return [PartInfo(number, int(size), "", 0.0, {algorithm: str(checksum)} if algorithm and checksum else {})
                for number, (size, checksum) in enumerate(zip(sizes, checksums, strict=False), 1)]

    @staticmethod
    def _completed(directory: Path, key: str, upload_id: str, parts: list[tuple[int, str]]) -> ObjectMeta | None:
        """A Complete repeated after the upload was completed: the ETag it was completed with, when it names the
        same parts (S3 answers a retried Complete so); NoSuchUpload when not; None when it was not completed."""
        done = read_sidecar(directory / COMPLETED_RECORD)
        if done is None:
            return None
        if done.get("key") != key or done.get("parts") != _part_list(parts):
            raise _no_such_upload(upload_id)
        return ObjectMeta(key=key, size=int(done["size"]), etag=str(done["etag"]), last_modified=float(done["time"]),
                          parts_count=len(parts), checksums=done.get("checksums", {}),
                          checksum_type=done.get("checksum_type"))

    async def complete_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]],
        conditions: WriteConditions, checksums: SentChecksums | None = None,
    ) -> ObjectMeta:
        _, directory = self._upload_path(bucket, upload_id)
        repeated = self._completed(directory, key, upload_id, parts)
        if repeated is not None:
            return repeated
        paths, directory, record = self._upload_dir(bucket, key, upload_id)
        if not parts:
            raise S3Error("MalformedXML", "You must specify at least one part")
        numbers = [number for number, _ in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise S3Error("InvalidPartOrder", extra={"UploadId": upload_id})
        algorithm, checksum_type = record.get("checksum_algorithm"), record.get("checksum_type")
        stored = self._parts(directory, algorithm)
        digest = hashlib.md5()
        files, sizes, size, named = [], [], 0, []
        for index, (number, etag) in enumerate(parts):
            part, file = stored.get(number, (None, None))
            if part is None or file is None or etag.strip().strip('"') != part.etag:
                raise S3Error("InvalidPart", extra={"UploadId": upload_id, "PartNumber": str(number),
                                                    "ETag": etag})
            if index < len(parts) - 1 and part.size < MIN_PART_SIZE_BYTES:
                raise S3Error("EntityTooSmall", extra={"ProposedSize": str(part.size),
                                                       "MinSizeAllowed": str(MIN_PART_SIZE_BYTES),
                                                       "PartNumber": str(number), "ETag": part.etag})
            digest.update(bytes.fromhex(part.etag))
            named.append(part)
            files.append(file)
            sizes.append(part.size)
            size += part.size
        object_checksums = completed_checksum(upload_id, algorithm, checksum_type, named, checksums or SentChecksums())
        await self.store.check_conditions(bucket, key, conditions)
        tmp = paths.new_tmp()
        try:
            await asyncio.to_thread(_concatenate, files, tmp, self.store.fsync)
        except FileNotFoundError:  # a part gone under us: a Complete of the same upload finished first...
            remove_quietly(tmp)
            repeated = self._completed(directory, key, upload_id, parts)
            if repeated is not None:
                return repeated
            if read_sidecar(directory / UPLOAD_RECORD) is None:  # ...or it was aborted
                raise _no_such_upload(upload_id) from None
            # ...or a part was uploaded again while this Complete read it: the ETag it named is no longer the part's
            raise S3Error("InvalidPart", extra={"UploadId": upload_id}) from None
        except BaseException:
            remove_quietly(tmp)
            raise
        etag = f"{digest.hexdigest()}-{len(parts)}"
        new = NewObject(record.get("headers", {}), record.get("user", {}), record.get("tags", {}), object_checksums,
                        checksum_type=checksum_type if object_checksums else None)
        record = record_for(etag, new, len(parts))
        record["part_sizes"] = sizes  # each part's size, in order: where each part lies, for part reads
        if algorithm:
            record["part_checksums"] = [part.checksums.get(algorithm) for part in named]
        meta = await self.store.commit(bucket, paths, key, tmp, record, conditions)  # judged again, the key held
        done = {"key": key, "parts": _part_list(parts), "etag": etag, "size": size, "time": meta.last_modified,
                "checksums": meta.checksums, "checksum_type": meta.checksum_type}
        _write_record(directory, COMPLETED_RECORD, done, paths.new_tmp())
        await asyncio.to_thread(_retire, directory)
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY_S
            await asyncio.to_thread(_sweep, paths.uploads, now)
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
                    uploads.append(UploadInfo(record["key"], entry.name, record["initiated"], record["initiator"],
                                              record.get("checksum_algorithm"), record.get("checksum_type")))
        return sorted(uploads, key=lambda u: (u.key, u.initiated))
