"""cache.storage.namespace.Namespace: buckets as mounts, names rewritten both ways, calls routed to the right store."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cache.blocks.metadata import CachedStore
from cache.blocks.reader import BlockReader
from cache.blocks.store import BlockStore
from cache.s3.errors import S3Error, no_such_bucket, no_such_key
from cache.s3.listing import paginate
from cache.s3.model import (
    BodyChecksums,
    BucketInfo,
    ListEntry,
    ListPage,
    NewObject,
    ObjectMeta,
    PartInfo,
    PartListing,
    SentChecksums,
    UploadInfo,
    WriteConditions,
)
from cache.storage.directory.store import DirectoryStore
from cache.storage.namespace import Mount, Namespace


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def body_of(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class FakeObject:
    def __init__(self, meta: ObjectMeta, data: bytes) -> None:
        self.meta, self.data = meta, data
        self.closed = False

    async def iter_range(self, start: int, end: int, chunk_bytes: int) -> AsyncIterator[bytes]:
        for offset in range(start, end, chunk_bytes):
            yield self.data[offset:min(end, offset + chunk_bytes)]

    async def read_small(self, start: int, end: int) -> bytes:
        return self.data[start:end]

    def close(self) -> None:
        self.closed = True


class FakeStore:
    """An in-memory under store that records the names every call reached it with."""

    def __init__(self, buckets: dict[str, dict[str, bytes]] | None = None) -> None:
        self.buckets: dict[str, dict[str, bytes]] = buckets if buckets is not None else {}
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.bodies: list[list[bytes]] = []
        self.uploads: list[UploadInfo] = []

    def _objects(self, bucket: str) -> dict[str, bytes]:
        if bucket not in self.buckets:
            raise no_such_bucket(bucket)
        return self.buckets[bucket]

    def _meta(self, bucket: str, key: str) -> ObjectMeta:
        objects = self._objects(bucket)
        if key not in objects:
            raise no_such_key(key)
        data = objects[key]
        return ObjectMeta(key, len(data), hashlib.md5(data).hexdigest(), 1.0, {"content-type": "x/y"}, {"m": "1"},
                          self.tags.get((bucket, key), {}))

    async def list_buckets(self) -> list[BucketInfo]:
        self.calls.append(("list_buckets",))
        return [BucketInfo(name, 5.0) for name in sorted(self.buckets)]

    async def head_bucket(self, bucket: str) -> None:
        self.calls.append(("head_bucket", bucket))
        self._objects(bucket)

    async def create_bucket(self, bucket: str) -> None:
        self.calls.append(("create_bucket", bucket))
        self.buckets.setdefault(bucket, {})

    async def delete_bucket(self, bucket: str) -> None:
        self.calls.append(("delete_bucket", bucket))
        del self.buckets[bucket]

    async def head_object(self, bucket: str, key: str, checksums: bool = False) -> ObjectMeta:
        self.calls.append(("head_object", bucket, key))
        return self._meta(bucket, key)

    async def open_object(self, bucket: str, key: str, first_byte: int | None = None) -> FakeObject:
        self.calls.append(("open_object", bucket, key))
        return FakeObject(self._meta(bucket, key), self._objects(bucket)[key])

    async def read_range(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        self.calls.append(("read_range", bucket, key, etag, start, end))
        yield self._objects(bucket)[key][start:end]

    async def put_object(self, bucket: str, key: str, body: AsyncIterator[bytes], new: NewObject,
                         conditions: WriteConditions, size: int | None = None) -> ObjectMeta:
        self.calls.append(("put_object", bucket, key, new, size))
        assert not isinstance(body, (bytes, bytearray))
        chunks = [chunk async for chunk in body]
        self.bodies.append(chunks)
        self._objects(bucket)[key] = b"".join(chunks)
        self.tags[(bucket, key)] = dict(new.tags)
        return self._meta(bucket, key)

    async def copy_object(self, src_bucket: str, src_key: str, bucket: str, key: str, new: NewObject | None,
                          tags: dict[str, str] | None, conditions: object = None) -> ObjectMeta:
        self.calls.append(("copy_object", src_bucket, src_key, bucket, key))
        self._objects(bucket)[key] = self._objects(src_bucket)[src_key]
        return self._meta(bucket, key)

    async def delete_object(self, bucket: str, key: str, conditions: object = None) -> None:
        self.calls.append(("delete_object", bucket, key))
        self._objects(bucket).pop(key, None)

    async def get_object_tags(self, bucket: str, key: str) -> dict[str, str]:
        self.calls.append(("get_object_tags", bucket, key))
        return self.tags.get((bucket, key), {})

    async def put_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self.calls.append(("put_object_tags", bucket, key, tags))
        self.tags[(bucket, key)] = tags

    async def list_objects(self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        self.calls.append(("list_objects", bucket, prefix, delimiter, marker, max_keys))
        objects = self._objects(bucket)
        items = [ListEntry(k, len(objects[k]), "e", 1.0) for k in sorted(objects)]
        return paginate(items, prefix, delimiter, marker, max_keys)

    async def create_upload(self, bucket: str, key: str, new: NewObject, initiator: str) -> str:
        self.calls.append(("create_upload", bucket, key))
        return "upload-1"

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: AsyncIterator[bytes],
                          size: int | None = None, checksums: BodyChecksums | None = None) -> PartInfo:
        self.calls.append(("upload_part", bucket, key, upload_id, number, size))
        chunks = [chunk async for chunk in body]
        self.bodies.append(chunks)
        return PartInfo(number, len(b"".join(chunks)), "part-etag", 1.0)

    async def upload_part_copy(self, bucket: str, key: str, upload_id: str, number: int, src_bucket: str,
                               src_key: str, start: int, end: int) -> PartInfo:
        self.calls.append(("upload_part_copy", bucket, key, upload_id, number, src_bucket, src_key, start, end))
        return PartInfo(number, end - start, "copied", 1.0)

    async def complete_upload(self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]],
                              conditions: WriteConditions, checksums: SentChecksums | None = None) -> ObjectMeta:
        self.calls.append(("complete_upload", bucket, key, upload_id))
        self._objects(bucket)[key] = b"done"
        return self._meta(bucket, key)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.calls.append(("abort_upload", bucket, key, upload_id))

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> PartListing:
        self.calls.append(("list_parts", bucket, key, upload_id))
        return PartListing([PartInfo(1, 5, "p1", 1.0)])

    async def object_parts(self, bucket: str, key: str) -> list[PartInfo]:
        self.calls.append(("object_parts", bucket, key))
        return []

    async def list_uploads(self, bucket: str) -> list[UploadInfo]:
        self.calls.append(("list_uploads", bucket))
        return list(self.uploads)


ORIGIN_KEYS = ["other/q", "pre/a", "pre/d/x", "pre/d/y", "pre/e", "pre/z", "top"]


def origin() -> FakeStore:
    return FakeStore({"origin-bkt": {k: k.encode() for k in ORIGIN_KEYS}, "alpha": {}, "zeta": {}})


def prefixed(store: FakeStore, **kwargs: Any) -> Namespace:
    return Namespace([Mount("data", store, "origin-bkt", "pre/", **kwargs)], None, default_cached=False)


# ---- prefix mounts ------------------------------------------------------------------------------


def test_prefix_mount_maps_keys_of_object_calls() -> None:
    store = origin()
    ns = prefixed(store)
    meta = run(ns.head_object("data", "d/x"))
    assert store.calls[-1] == ("head_object", "origin-bkt", "pre/d/x")
    assert meta.key == "d/x" and meta.size == len(b"pre/d/x") and meta.user_metadata == {"m": "1"}
    opened = run(ns.open_object("data", "a"))
    assert store.calls[-1] == ("open_object", "origin-bkt", "pre/a") and opened.meta.key == "a"
    written = run(ns.put_object("data", "new/k", body_of([b"ab", b"c"]), NewObject(), WriteConditions(), size=3))
    assert store.calls[-1][:3] == ("put_object", "origin-bkt", "pre/new/k") and written.key == "new/k"
    assert store.buckets["origin-bkt"]["pre/new/k"] == b"abc"
    run(ns.delete_object("data", "new/k"))
    assert store.calls[-1] == ("delete_object", "origin-bkt", "pre/new/k")
    run(ns.put_object_tags("data", "a", {"t": "v"}))
    assert store.calls[-1] == ("put_object_tags", "origin-bkt", "pre/a", {"t": "v"})
    assert run(ns.get_object_tags("data", "a")) == {"t": "v"}
    assert store.calls[-1] == ("get_object_tags", "origin-bkt", "pre/a")


def test_prefix_mount_missing_key_is_no_such_key() -> None:
    with pytest.raises(S3Error) as caught:
        run(prefixed(origin()).head_object("data", "q"))  # "other/q" and "top" are outside the mount
    assert caught.value.code == "NoSuchKey"


def keys(page: ListPage) -> tuple[list[str], list[str], bool, str | None]:
    return [e.key for e in page.entries], page.common_prefixes, page.is_truncated, page.next_marker


def test_prefix_mount_listings_strip_the_prefix() -> None:
    store = origin()
    ns = prefixed(store)
    assert keys(run(ns.list_objects("data", "", "", "", 1000))) == (["a", "d/x", "d/y", "e", "z"], [], False, None)
    assert store.calls[-1] == ("list_objects", "origin-bkt", "pre/", "", "", 1000)
    assert keys(run(ns.list_objects("data", "", "/", "", 1000))) == (["a", "e", "z"], ["d/"], False, None)
    assert keys(run(ns.list_objects("data", "d/", "/", "", 1000))) == (["d/x", "d/y"], [], False, None)
    assert store.calls[-1] == ("list_objects", "origin-bkt", "pre/d/", "/", "", 1000)


def test_prefix_mount_markers_are_mapped_both_ways() -> None:
    store = origin()
    ns = prefixed(store)
    page = run(ns.list_objects("data", "", "/", "", 2))
    assert keys(page) == (["a"], ["d/"], True, "d/")
    page = run(ns.list_objects("data", "", "/", "d/", 2))
    assert store.calls[-1] == ("list_objects", "origin-bkt", "pre/", "/", "pre/d/", 2)
    assert keys(page) == (["e", "z"], [], False, None)


def test_paging_a_prefix_mount_returns_every_key_once() -> None:
    ns = prefixed(origin())
    seen: list[str] = []
    marker = ""
    for _ in range(10):
        page = run(ns.list_objects("data", "", "", marker, 2))
        seen += [e.key for e in page.entries]
        if not page.is_truncated:
            break
        assert page.next_marker is not None
        marker = page.next_marker
    assert seen == ["a", "d/x", "d/y", "e", "z"]


def test_mount_without_a_prefix_passes_names_through() -> None:
    store = origin()
    ns = Namespace([Mount("mine", store, "origin-bkt")], None, default_cached=False)
    assert run(ns.head_object("mine", "pre/a")).key == "pre/a"
    assert store.calls[-1] == ("head_object", "origin-bkt", "pre/a")
    assert keys(run(ns.list_objects("mine", "", "/", "", 1000))) == (["top"], ["other/", "pre/"], False, None)


def test_prefix_mount_multipart_calls_are_mapped() -> None:
    store = origin()
    ns = prefixed(store)
    assert run(ns.create_upload("data", "big", NewObject(), "alice")) == "upload-1"
    assert store.calls[-1] == ("create_upload", "origin-bkt", "pre/big")
    run(ns.upload_part("data", "big", "upload-1", 1, body_of([b"x"]), size=1))
    assert store.calls[-1] == ("upload_part", "origin-bkt", "pre/big", "upload-1", 1, 1)
    run(ns.upload_part_copy("data", "big", "upload-1", 2, "data", "a", 0, 3))
    assert store.calls[-1] == ("upload_part_copy", "origin-bkt", "pre/big", "upload-1", 2, "origin-bkt", "pre/a", 0, 3)
    meta = run(ns.complete_upload("data", "big", "upload-1", [(1, "p")], WriteConditions()))
    assert store.calls[-1] == ("complete_upload", "origin-bkt", "pre/big", "upload-1") and meta.key == "big"
    run(ns.list_parts("data", "big", "upload-1"))
    assert store.calls[-1] == ("list_parts", "origin-bkt", "pre/big", "upload-1")
    run(ns.abort_upload("data", "big", "upload-1"))
    assert store.calls[-1] == ("abort_upload", "origin-bkt", "pre/big", "upload-1")


def test_prefix_mount_lists_only_its_own_uploads() -> None:
    store = origin()
    store.uploads = [UploadInfo("pre/big", "u1", 1.0, "alice"), UploadInfo("other/big", "u2", 1.0, "bob"),
                     UploadInfo("pre/d/y", "u3", 1.0, "carol")]
    assert run(prefixed(store).list_uploads("data")) == [UploadInfo("big", "u1", 1.0, "alice"),
                                                         UploadInfo("d/y", "u3", 1.0, "carol")]


# ---- buckets ------------------------------------------------------------------------------------


def test_list_buckets_merges_mounts_and_the_default_store() -> None:
    default = FakeStore({"alpha": {}, "mnt": {}, "zeta": {}})
    ns = Namespace([Mount("data", origin(), "origin-bkt", "pre/"), Mount("mnt", origin(), "origin-bkt")], default,
                   default_cached=False)
    buckets = run(ns.list_buckets())
    assert [b.name for b in buckets] == ["alpha", "data", "mnt", "zeta"]
    assert {b.name: b.created for b in buckets}["alpha"] == 5.0


def test_list_buckets_without_a_default_store_lists_the_mounts() -> None:
    assert [b.name for b in run(prefixed(origin()).list_buckets())] == ["data"]


def test_buckets_not_mounted_go_to_the_default_store_by_name() -> None:
    default = FakeStore({"plain": {"k": b"v"}})
    ns = Namespace([Mount("data", origin(), "origin-bkt", "pre/")], default, default_cached=True)
    assert run(ns.head_object("plain", "k")).key == "k"
    assert default.calls[-1] == ("head_object", "plain", "k")
    assert ns.mount("plain").cached is True and ns.mount("plain").store is default
    run(ns.create_bucket("fresh"))
    assert default.calls[-1] == ("create_bucket", "fresh")
    run(ns.head_bucket("fresh"))
    assert default.calls[-1] == ("head_bucket", "fresh")
    run(ns.delete_bucket("fresh"))
    assert default.calls[-1] == ("delete_bucket", "fresh") and "fresh" not in default.buckets


def test_mounted_buckets_cannot_be_created_or_deleted() -> None:
    store = origin()
    ns = prefixed(store)
    with pytest.raises(S3Error) as caught:
        run(ns.create_bucket("data"))
    assert caught.value.code == "BucketAlreadyOwnedByYou"
    with pytest.raises(S3Error) as caught:
        run(ns.delete_bucket("data"))
    assert caught.value.code == "AccessDenied"
    assert store.calls == [] and "origin-bkt" in store.buckets
    run(ns.head_bucket("data"))
    assert store.calls == [("head_bucket", "origin-bkt")]


def test_without_a_default_store_unmounted_buckets_do_not_exist() -> None:
    ns = prefixed(origin())
    for call in (ns.head_bucket("nope"), ns.head_object("nope", "k"), ns.create_bucket("nope"),
                 ns.list_objects("nope", "", "", "", 10), ns.delete_bucket("nope")):
        with pytest.raises(S3Error) as caught:
            run(call)
        assert caught.value.code == "NoSuchBucket" and caught.value.extra == {"BucketName": "nope"}


# ---- copies -------------------------------------------------------------------------------------


def test_copy_within_one_store_is_the_store_s_own_copy() -> None:
    store = origin()
    ns = Namespace([Mount("data", store, "origin-bkt", "pre/"), Mount("raw", store, "origin-bkt")], None,
                   default_cached=False)
    meta = run(ns.copy_object("raw", "top", "data", "copied", None, None))
    assert store.calls[-1] == ("copy_object", "origin-bkt", "top", "origin-bkt", "pre/copied")
    assert meta.key == "copied"


def test_copy_across_stores_streams_the_bytes() -> None:
    data = random.Random(1).randbytes(9 * 1024 * 1024 + 5)
    src = FakeStore({"s": {"big": data}})
    src.tags[("s", "big")] = {"colour": "blue"}
    dst = FakeStore({"d": {}})
    ns = Namespace([Mount("from", src, "s"), Mount("to", dst, "d", "p/")], None, default_cached=False)
    meta = run(ns.copy_object("from", "big", "to", "copy", None, None))
    assert meta.key == "copy" and meta.size == len(data)
    assert dst.buckets["d"]["p/copy"] == data
    chunks = dst.bodies[-1]
    assert len(chunks) >= 3 and max(len(c) for c in chunks) <= 4 * 1024 * 1024  # in pieces, never whole
    _, _, _, new, size = dst.calls[-1]
    assert size == len(data)
    assert new.headers == {"content-type": "x/y"} and new.user_metadata == {"m": "1"} and new.tags == {"colour": "blue"}


def test_copy_across_stores_with_new_metadata_and_tags() -> None:
    src = FakeStore({"s": {"k": b"bytes"}})
    src.tags[("s", "k")] = {"old": "1"}
    dst = FakeStore({"d": {}})
    ns = Namespace([Mount("from", src, "s"), Mount("to", dst, "d")], None, default_cached=False)
    run(ns.copy_object("from", "k", "to", "k2", NewObject({"content-type": "text/plain"}, {"a": "b"}), {"new": "2"}))
    _, _, _, new, _ = dst.calls[-1]
    assert new.headers == {"content-type": "text/plain"} and new.user_metadata == {"a": "b"}
    assert new.tags == {"new": "2"}


def test_upload_part_copy_across_stores_streams_the_range() -> None:
    data = bytes(range(256)) * 100
    src = FakeStore({"s": {"k": data}})
    dst = FakeStore({"d": {}})
    ns = Namespace([Mount("from", src, "s", "x/"), Mount("to", dst, "d")], None, default_cached=False)
    src.buckets["s"]["x/k"] = data
    part = run(ns.upload_part_copy("to", "big", "u", 3, "from", "k", 100, 5000))
    assert dst.calls[-1] == ("upload_part", "d", "big", "u", 3, 4900)
    assert b"".join(dst.bodies[-1]) == data[100:5000] and part.size == 4900


def test_copy_between_two_directory_stores(tmp_path: Path) -> None:
    first, second = DirectoryStore(tmp_path / "one"), DirectoryStore(tmp_path / "two")
    ns = Namespace([Mount("left", first, "left"), Mount("right", second, "right")], None, default_cached=False)
    data = random.Random(2).randbytes(5 * 1024 * 1024 + 3)

    async def go() -> None:
        await first.create_bucket("left")
        await second.create_bucket("right")
        new = NewObject({"content-type": "application/x-test"}, {"owner": "alice"}, {"tier": "gold"})
        await ns.put_object("left", "dir/src.bin", body_of([data[:1000], data[1000:]]), new, WriteConditions(),
                            size=len(data))
        meta = await ns.copy_object("left", "dir/src.bin", "right", "copied/dst.bin", None, None)
        assert meta.key == "copied/dst.bin" and meta.size == len(data)
        assert meta.etag == hashlib.md5(data).hexdigest()
        head = await ns.head_object("right", "copied/dst.bin")
        assert head.content_type == "application/x-test" and head.user_metadata == {"owner": "alice"}
        assert await ns.get_object_tags("right", "copied/dst.bin") == {"tier": "gold"}
        listed = await ns.list_objects("right", "", "", "", 10)
        assert [e.key for e in listed.entries] == ["copied/dst.bin"]

    run(go())
    assert (tmp_path / "two" / "right" / "copied" / "dst.bin").read_bytes() == data


def test_one_invalidation_by_origin_name_reaches_every_mount_of_the_object(tmp_path: Path) -> None:
    """The block cache sits under the namespace and keys metadata by origin names: whatever a mount calls the
    bucket, a write announced by origin name (another worker's invalidation) is forgotten under every name."""
    default = origin()
    reader = BlockReader(BlockStore(tmp_path / "blocks", 1 << 20), 1 << 20, default.read_range)
    cached = CachedStore(default, reader, metadata_ttl_s=60)
    ns = Namespace([Mount("data", cached, "origin-bkt", "pre/"), Mount("raw", cached, "origin-bkt")], cached,
                   default_cached=True)

    async def go() -> None:
        assert (await ns.head_object("data", "d/x")).key == "d/x"
        assert (await ns.head_object("raw", "pre/d/x")).key == "pre/d/x"
        heads = [c for c in default.calls if c[0] == "head_object"]
        assert heads == [("head_object", "origin-bkt", "pre/d/x")]  # one origin HEAD for both names
        default.buckets["origin-bkt"]["pre/d/x"] = b"changed at the origin"
        cached.forget("origin-bkt", "pre/d/x")  # what a peer's invalidation calls
        assert (await ns.head_object("data", "d/x")).size == len(b"changed at the origin")
        assert (await ns.head_object("raw", "pre/d/x")).size == len(b"changed at the origin")
        assert len([c for c in default.calls if c[0] == "head_object"]) == 2

    run(go())
    assert ns.origin_name("data", "d/x") == ("origin-bkt", "pre/d/x")
    assert ns.origin_name("raw", "x") == ("origin-bkt", "x")


def test_a_listing_that_raced_a_write_is_not_kept(tmp_path: Path) -> None:
    """An invalidation that arrives while a listing is on its way to the origin means the page may predate the write:
    it answers the listing that asked, and is not cached for the next ones."""
    default = origin()
    reader = BlockReader(BlockStore(tmp_path / "blocks", 1 << 20), 1 << 20, default.read_range)
    cached = CachedStore(default, reader, metadata_ttl_s=60, list_ttl_s=60)
    answer = default.list_objects
    gate = asyncio.Event()

    async def slow_list(bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListPage:
        await gate.wait()
        return await answer(bucket, prefix, delimiter, marker, max_keys)

    def listings() -> int:
        return len([c for c in default.calls if c[0] == "list_objects"])

    async def go() -> None:
        gate.set()
        await cached.list_objects("origin-bkt", "", "", "", 10)
        await cached.list_objects("origin-bkt", "", "", "", 10)
        assert listings() == 1  # the second from memory
        cached.forget("origin-bkt", "new-key")  # a write: the bucket's pages are dropped
        gate.clear()
        racing = asyncio.ensure_future(cached.list_objects("origin-bkt", "", "", "", 10))
        await asyncio.sleep(0.01)  # the listing is on its way to the origin
        cached.forget("origin-bkt", "newer-key")  # another write lands meanwhile
        gate.set()
        await racing
        await cached.list_objects("origin-bkt", "", "", "", 10)
        assert listings() == 3

    default.list_objects = slow_list  # type: ignore[method-assign]
    run(go())
