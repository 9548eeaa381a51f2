"""Walking a bucket directory in S3 key order, lazily, skipping what a listing cannot reach.

Sorting each directory's children by their key (a directory's key ends in "/") yields keys in
global lexicographic order, so a depth-first walk can stop after max-keys and prune every subtree
that lies wholly before the marker or outside the prefix. With delimiter "/" a sub-directory is
returned as a common prefix without being read at all.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from cache.s3.listing import paginate
from cache.s3.model import ListEntry, ListPage, ObjectMeta
from cache.s3.names import RESERVED_DIR
from cache.storage.directory.layout import BucketPaths

MetaFn = Callable[[str, os.stat_result], ObjectMeta]


def _unreachable(prefix_dir: str) -> bool:
    """A prefix directory no stored key can lie under (and that must not be resolved on disk)."""
    if prefix_dir.startswith("/"):
        return True
    parts = prefix_dir.removesuffix("/").split("/") if prefix_dir else []  # "a//" keeps its empty part
    return any(part in ("", ".", "..") or "\x00" in part for part in parts) or (parts[:1] == [RESERVED_DIR])


def _walk(
    paths: BucketPaths, directory: Path, dir_key: str, prefix: str, marker: str, collapse: bool,
    meta: MetaFn, marker_meta: MetaFn,
) -> Iterator[ListEntry | str]:
    try:
        with os.scandir(directory) as scan:
            children = []
            for entry in scan:
                if not dir_key and entry.name == RESERVED_DIR:
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                children.append((dir_key + entry.name + ("/" if is_dir else ""), entry, is_dir))
    except (FileNotFoundError, NotADirectoryError):
        return
    if dir_key and dir_key.startswith(prefix) and dir_key > marker:
        if not children or paths.meta(dir_key).exists():
            m = marker_meta(dir_key, os.stat(directory))
            yield ListEntry(dir_key, 0, m.etag, m.last_modified)
    children.sort(key=lambda child: child[0])
    for key, entry, is_dir in children:
        if is_dir:
            within = key.startswith(prefix)
            if not within and not prefix.startswith(key):
                continue
            if marker >= key and not marker.startswith(key):
                continue  # the whole subtree sorts before the marker
            if within and collapse and not (marker > key and marker.startswith(key)):
                yield key  # a marker inside the subtree must be walked: only keys after it make the prefix
            else:
                yield from _walk(paths, Path(entry.path), key, prefix, marker, collapse, meta, marker_meta)
        elif key.startswith(prefix) and key > marker:
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                m = meta(key, st)
                yield ListEntry(key, m.size, m.etag, m.last_modified)


def list_page(
    paths: BucketPaths, prefix: str, delimiter: str, marker: str, max_keys: int, meta: MetaFn, marker_meta: MetaFn
) -> ListPage:
    start_key = prefix[: prefix.rfind("/") + 1]
    if _unreachable(start_key):
        return ListPage([], [], False, None)
    start = paths.root / start_key if start_key else paths.root
    items = _walk(paths, start, start_key, prefix, marker, delimiter == "/", meta, marker_meta)
    return paginate(items, prefix, delimiter, marker, max_keys)
