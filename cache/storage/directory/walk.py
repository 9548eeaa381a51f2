"""Walking a bucket directory in S3 key order, lazily, skipping what a listing cannot reach.

Sorting each directory's children by their key (a directory's key ends in "/") yields keys in
global lexicographic order, so a depth-first walk can stop after max-keys and prune every subtree
that lies wholly before the marker or outside the prefix. With delimiter "/" a sub-directory is
returned as a common prefix without being read at all.

A symbolic link is listed only when it resolves inside the bucket's directory (``layout.inside``), and a linked
directory is walked only when it is not one the walk is already inside (a link to an ancestor would never end).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from cache.s3.listing import paginate
from cache.s3.model import ListEntry, ListPage, ObjectMeta
from cache.s3.names import RESERVED_DIR
from cache.storage.directory.layout import BucketPaths, has_link, inside

MetaFn = Callable[[str, os.stat_result], ObjectMeta]


def _unreachable(prefix_dir: str) -> bool:
    """A prefix directory no stored key can lie under (and that must not be resolved on disk)."""
    if prefix_dir.startswith("/"):
        return True
    parts = prefix_dir.removesuffix("/").split("/") if prefix_dir else []  # "a//" keeps its empty part
    return any(part in ("", ".", "..") or "\x00" in part for part in parts) or (parts[:1] == [RESERVED_DIR])


def _followed(paths: BucketPaths, entry: os.DirEntry[str], ancestors: frozenset[str]) -> str | None:
    """The resolved path of a linked entry when a listing may follow it: inside the bucket, and (for a
    directory) not one of the directories the walk is in."""
    real = os.path.realpath(entry.path)
    if not inside(paths, real) or real in ancestors:
        return None
    return real


def _walk(
    paths: BucketPaths, directory: Path, dir_key: str, prefix: str, marker: str, collapse: bool,
    meta: MetaFn, marker_meta: MetaFn, real_dir: str, ancestors: frozenset[str],
) -> Iterator[ListEntry | str]:
    try:
        with os.scandir(directory) as scan:
            children = []
            for entry in scan:
                if not dir_key and entry.name == RESERVED_DIR:
                    continue
                try:
                    is_dir = entry.is_dir()
                    real = _followed(paths, entry, ancestors) if entry.is_symlink() else f"{real_dir}/{entry.name}"
                except OSError:
                    continue
                if real is not None:
                    children.append((dir_key + entry.name + ("/" if is_dir else ""), entry, is_dir, real))
    except (FileNotFoundError, NotADirectoryError):
        return
    if dir_key and dir_key.startswith(prefix) and dir_key > marker:
        if not children or paths.meta(dir_key).exists():
            m = marker_meta(dir_key, os.stat(directory))
            yield ListEntry(dir_key, 0, m.etag, m.last_modified)
    children.sort(key=lambda child: child[0])
    for key, entry, is_dir, real in children:
        if is_dir:
            within = key.startswith(prefix)
            if not within and not prefix.startswith(key):
                continue
            if marker >= key and not marker.startswith(key):
                continue  # the whole subtree sorts before the marker
            if within and collapse and not (marker > key and marker.startswith(key)):
                yield key  # a marker inside the subtree must be walked: only keys after it make the prefix
            else:
                yield from _walk(paths, Path(entry.path), key, prefix, marker, collapse, meta, marker_meta, real,
                                 ancestors | {real})
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
    real = str(start).rstrip("/")
    if has_link(paths.root_str, real):
        real = os.path.realpath(start)
        if real != paths.root_str and not inside(paths, real):  # keys under a link out of the bucket: none
            return ListPage([], [], False, None)
    ancestors = frozenset({paths.root_str, real})
    items = _walk(paths, start, start_key, prefix, marker, delimiter == "/", meta, marker_meta, real, ancestors)
    return paginate(items, prefix, delimiter, marker, max_keys)
