"""cache.blocks.store.BlockStore when its disk fails it: a full disk is said once and caching resumes by itself
once a block can be written again; a cache directory removed under the store is made again, and the blocks it
held are misses."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import pytest

from tests.unit.cache.blocks.test_store import bid, failing, payload, run, store_at


def test_a_full_disk_is_said_once_and_caching_resumes_when_a_write_gets_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    store = store_at(tmp_path)
    caplog.set_level(logging.INFO, logger="s3cache.blocks")
    monkeypatch.setattr(os, "replace", failing(errno.ENOSPC))
    assert [run(store.write(bid(n), payload(1000, n))) for n in range(5)] == [False] * 5
    full = [r.getMessage() for r in caplog.records if "disk full" in r.getMessage()]
    assert len(full) == 1 and "served without being cached" in full[0], caplog.text
    assert store.failing == "disk full" and len(store) == 0
    monkeypatch.undo()  # space returns
    assert run(store.write(bid(9), b"cached")) is True
    assert store.failing is None and run(store.read(bid(9), 0, 6)) == b"cached"
    assert sum("caching resumed" in r.getMessage() for r in caplog.records) == 1


def test_a_new_cause_is_said_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   caplog: pytest.LogCaptureFixture) -> None:
    store = store_at(tmp_path)
    caplog.set_level(logging.WARNING, logger="s3cache.blocks")
    for err in (errno.ENOSPC, errno.ENOSPC, errno.EROFS, errno.EROFS):
        monkeypatch.setattr(os, "replace", failing(err))
        assert run(store.write(bid(err), b"x")) is False
    assert [r.getMessage().split(": ")[1] for r in caplog.records] == ["disk full (No space left on device)",
                                                                      "read-only (Read-only file system)"]


def test_a_cache_directory_removed_under_the_store_is_made_again(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    store = store_at(tmp_path)
    assert run(store.write(bid("old"), b"held before"))
    shutil.rmtree(store.directory)
    caplog.set_level(logging.WARNING, logger="s3cache.blocks")
    with pytest.raises(KeyError):  # its file is gone: a miss, fetched again by the reader
        run(store.read(bid("old"), 0, 4))
    assert bid("old") not in store
    assert run(store.write(bid("new"), b"cached again")) is True
    assert run(store.read(bid("new"), 0, 12)) == b"cached again"
    assert sum("was removed: made again" in r.getMessage() for r in caplog.records) == 1
