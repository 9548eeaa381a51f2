"""Where a key's bytes go in the directory tree, and how a finished file gets there.

A directory cannot hold both "a" and "a/...": such a key is refused before its body is read (``check_placeable``)
and again at the move. The move is one rename(2), or for a create (If-None-Match: *) one link(2), which fails
when the name exists, so not even a program writing the directory past s3cache is overwritten by it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cache.s3.errors import S3Error
from cache.storage.directory.layout import BucketPaths, check_reachable, remove_quietly, storage_error


def conflict(key: str) -> S3Error:
    return S3Error(
        "InvalidRequest",
        f"Key {key!r} conflicts with an existing object or prefix: a directory under storage cannot hold "
        "both 'a' and 'a/...'",
        extra={"Key": key},
    )


def check_placeable(paths: BucketPaths, key: str) -> None:
    """Fail before reading a body when the key cannot live in the directory tree (or only outside it)."""
    target = paths.data(key)
    check_reachable(paths, str(target), key)
    for parent in reversed(target.relative_to(paths.root).parents[:-1]):
        candidate = paths.root / parent
        if candidate.exists() and not candidate.is_dir():
            raise conflict(key)
    if not key.endswith("/") and target.is_dir():
        raise conflict(key)
    if key.endswith("/") and target.exists() and not target.is_dir():
        raise conflict(key)


def place(paths: BucketPaths, key: str, tmp: Path, create: bool) -> Path:
    """Move the finished file tmp to key's path (create: only if nothing is there: 412 PreconditionFailed); tmp is
    gone either way. Returns the path."""
    target = paths.data(key)
    try:
        check_reachable(paths, str(target), key)  # again: a link may have appeared while the body came in
        target.parent.mkdir(parents=True, exist_ok=True)
        if create:
            try:
                os.link(tmp, target)
            except FileExistsError:
                if target.is_dir():
                    raise
                raise S3Error("PreconditionFailed", extra={"Condition": "If-None-Match"}) from None
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        remove_quietly(tmp)
        raise conflict(key) from None
    except OSError as exc:
        remove_quietly(tmp)
        raise storage_error(exc) from exc
    except S3Error:
        remove_quietly(tmp)
        raise
    return target
