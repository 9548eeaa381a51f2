"""cache.storage.directory.walk.list_page over real directory trees: S3 key order, prefix, marker, delimiter, pruning."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.s3.model import ListPage, ObjectMeta
from cache.storage.directory.layout import BucketPaths
from cache.storage.directory.walk import list_page
from tests.unit.cache.s3.test_listing import reference


class Tree:
    """A bucket directory built from keys ("dir/" = an empty directory), with meta functions that record calls."""

    def __init__(self, root: Path, keys: Iterable[str] = ()) -> None:
        self.paths = BucketPaths(root)
        root.mkdir(parents=True, exist_ok=True)
        self.calls: list[str] = []
        for key in keys:
            self.add(key)

    def add(self, key: str, data: bytes | None = None) -> None:
        path = self.paths.root / key
        if key.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(key.encode() if data is None else data)

    def mark(self, key: str) -> None:
        """An explicit "dir/" object: the directory exists and has a metadata sidecar."""
        self.add(key)
        sidecar = Path(self.paths.meta(key))
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        sidecar.write_text('{"etag": "d41d8cd98f00b204e9800998ecf8427e"}')

    def meta(self, key: str, st: os.stat_result) -> ObjectMeta:
        self.calls.append(key)
        return ObjectMeta(key, st.st_size, f"etag:{key}", st.st_mtime)

    def marker_meta(self, key: str, st: os.stat_result) -> ObjectMeta:
        self.calls.append(key)
        return ObjectMeta(key, 0, "d41d8cd98f00b204e9800998ecf8427e", st.st_mtime)

    def page(self, prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = 1000) -> ListPage:
        return list_page(self.paths, prefix, delimiter, marker, max_keys, self.meta, self.marker_meta)

    def run(self, prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = 1000
            ) -> tuple[list[str], list[str], bool, str | None]:
        page = self.page(prefix, delimiter, marker, max_keys)
        return [e.key for e in page.entries], page.common_prefixes, page.is_truncated, page.next_marker


KEYS = ["a-b", "a/x", "a/y-1", "a/y/z", "a/y0", "a0", "b", "c/d/e", "empty/"]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path / "bucket", KEYS)


def test_global_lexicographic_order(tree: Tree) -> None:
    # '-' (0x2d) < '/' (0x2f) < '0' (0x30): "a-b" < "a/..." < "a0", and "a/y-1" < "a/y/z" < "a/y0"
    assert tree.run() == (KEYS, [], False, None)
    assert KEYS == sorted(KEYS)


def test_entries_carry_size_and_meta(tree: Tree) -> None:
    tree.add("sized", b"12345")
    page = tree.page("sized")
    assert [(e.key, e.size, e.etag) for e in page.entries] == [("sized", 5, "etag:sized")]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a-b", "a/x", "a/y-1", "a/y/z", "a/y0", "a0"]),
        ("a/", ["a/x", "a/y-1", "a/y/z", "a/y0"]),
        ("a/y", ["a/y-1", "a/y/z", "a/y0"]),  # mid-name: the walk starts in a/
        ("a/y/", ["a/y/z"]),
        ("a/y/z", ["a/y/z"]),
        ("a/y/z/", []),  # a file is not a directory
        ("c/d", ["c/d/e"]),
        ("e", ["empty/"]),
        ("empty/", ["empty/"]),  # the empty directory is the "empty/" object
        ("nope/", []),
        ("nope", []),
    ],
)
def test_prefix(tree: Tree, prefix: str, expected: list[str]) -> None:
    assert tree.run(prefix) == (expected, [], False, None)


def test_delimiter_collapses_directories(tree: Tree) -> None:
    assert tree.run("", "/") == (["a-b", "a0", "b"], ["a/", "c/", "empty/"], False, None)
    assert tree.run("a/", "/") == (["a/x", "a/y-1", "a/y0"], ["a/y/"], False, None)
    assert tree.run("a/y", "/") == (["a/y-1", "a/y0"], ["a/y/"], False, None)
    assert tree.run("c/", "/") == ([], ["c/d/"], False, None)


def test_collapsed_directories_are_not_read(tree: Tree) -> None:
    tree.run("", "/")
    assert sorted(tree.calls) == ["a-b", "a0", "b"]


def test_other_delimiters_descend_and_group(tree: Tree) -> None:
    assert tree.run("", "-") == (["a/x", "a/y/z", "a/y0", "a0", "b", "c/d/e", "empty/"], ["a-", "a/y-"], False, None)


def test_marker(tree: Tree) -> None:
    assert tree.run(marker="a/y-1") == (["a/y/z", "a/y0", "a0", "b", "c/d/e", "empty/"], [], False, None)
    assert tree.run(marker="a/y/") == (["a/y/z", "a/y0", "a0", "b", "c/d/e", "empty/"], [], False, None)
    assert tree.run(marker="a/") == (["a/x", "a/y-1", "a/y/z", "a/y0", "a0", "b", "c/d/e", "empty/"], [], False, None)
    assert tree.run(marker="empty/") == ([], [], False, None)
    assert tree.run(marker="zzz") == ([], [], False, None)


def test_marker_with_delimiter(tree: Tree) -> None:
    assert tree.run("", "/", "a/") == (["a0", "b"], ["c/", "empty/"], False, None)
    assert tree.run("a/", "/", "a/y/") == (["a/y0"], [], False, None)


def test_marker_inside_a_directory_with_nothing_after_it(tmp_path: Path) -> None:
    # S3 returns a common prefix only for keys after the marker; nothing under x/ sorts after "x/5"
    tree = Tree(tmp_path / "bucket", ["x/1", "y"])
    assert tree.run("", "/", "x/5") == (["y"], [], False, None)
    assert tree.run("", "/", "x/0") == (["y"], ["x/"], False, None)


def test_marker_prunes_whole_subtrees(tree: Tree) -> None:
    tree.run(marker="a0")
    assert tree.calls == ["b", "c/d/e", "empty/"]


def test_max_keys_stops_the_walk(tree: Tree) -> None:
    assert tree.run(max_keys=2) == (["a-b", "a/x"], [], True, "a/x")
    assert len(tree.calls) <= 3  # the walk stops at the first key past the page


def test_paging(tree: Tree) -> None:
    seen: list[str] = []
    marker = ""
    while True:
        keys, prefixes, truncated, next_marker = tree.run("", "/", marker, 2)
        seen += keys + prefixes
        if not truncated:
            break
        assert next_marker is not None
        marker = next_marker
    assert sorted(seen) == ["a-b", "a/", "a0", "b", "c/", "empty/"]


def test_max_keys_zero(tree: Tree) -> None:
    assert tree.run(max_keys=0) == ([], [], False, None)


def test_directory_markers(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "bucket", ["d/f", "e/"])
    tree.mark("d/")  # explicit "d/" object that also has children
    tree.add("nested/empty/")
    assert tree.run() == (["d/", "d/f", "e/", "nested/empty/"], [], False, None)
    assert tree.run("d/") == (["d/", "d/f"], [], False, None)
    assert tree.run("d/", "/") == (["d/", "d/f"], [], False, None)
    assert tree.run("", "/") == ([], ["d/", "e/", "nested/"], False, None)
    assert tree.run(marker="d/") == (["d/f", "e/", "nested/empty/"], [], False, None)


def test_an_implicit_directory_is_not_an_object(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "bucket", ["d/f"])
    assert tree.run("d/") == (["d/f"], [], False, None)


def test_the_system_directory_is_hidden(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "bucket", ["a", ".s3cache-like", ".s3cachex/y"])
    tree.mark("m/")  # writes a sidecar under .s3cache/
    (tree.paths.system / "tmp").mkdir(parents=True, exist_ok=True)
    (tree.paths.system / "tmp" / "partial").write_bytes(b"x")
    assert tree.run() == ([".s3cache-like", ".s3cachex/y", "a", "m/"], [], False, None)
    assert tree.run("", "/") == ([".s3cache-like", "a"], [".s3cachex/", "m/"], False, None)
    assert tree.run(".s3cache") == ([".s3cache-like", ".s3cachex/y"], [], False, None)


@pytest.mark.parametrize(
    "prefix",
    ["../", "../out", "/x", "/", ".s3cache/", ".s3cache/tmp/", "a/../", "a/../../", "./", "a/./", "a//", "//",
     "a\x00/"],
)
def test_unreachable_prefixes_return_nothing(tmp_path: Path, prefix: str) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_bytes(b"secret")
    tree = Tree(tmp_path / "bucket", ["a/b", "x"])
    tree.mark("a/")
    (tree.paths.system / "tmp").mkdir(parents=True, exist_ok=True)
    (tree.paths.system / "tmp" / "partial").write_bytes(b"x")
    for delimiter in ("", "/"):
        assert tree.run(prefix, delimiter) == ([], [], False, None)
    assert tree.calls == []


def test_missing_bucket_directory_lists_nothing(tmp_path: Path) -> None:
    paths = BucketPaths(tmp_path / "gone")
    page = list_page(paths, "", "", "", 10, lambda k, s: ObjectMeta(k, 0, "", 0), lambda k, s: ObjectMeta(k, 0, "", 0))
    assert (page.entries, page.common_prefixes, page.is_truncated) == ([], [], False)


# ---- property: any tree, any listing, same as the S3 rules ------------------------------------------

SEGMENT = st.text(alphabet="ab-0", min_size=1, max_size=2)
NODE = st.tuples(st.lists(SEGMENT, min_size=1, max_size=3), st.booleans())


def consistent_keys(nodes: list[tuple[list[str], bool]]) -> list[str]:
    """Keys a directory can hold: no file where a directory is, "x/" only for directories left empty."""
    taken: dict[tuple[str, ...], bool] = {}
    for segments, empty_dir in nodes:
        path = tuple(segments)
        clash = path in taken or any(path[:i] in taken for i in range(1, len(path))) or \
            any(other[:len(path)] == path for other in taken)
        if not clash:
            taken[path] = empty_dir
    return sorted("/".join(path) + ("/" if empty_dir else "") for path, empty_dir in taken.items())


@settings(max_examples=120, deadline=None)
@given(
    nodes=st.lists(NODE, max_size=12),
    prefix=st.text(alphabet="ab-0/", max_size=4),
    delimiter=st.sampled_from(["", "/", "-"]),
    marker=st.one_of(st.just(""), st.text(alphabet="ab-0/", min_size=1, max_size=6)),
    max_keys=st.integers(min_value=1, max_value=4),
)
def test_any_tree_lists_as_s3_would(
    nodes: list[tuple[list[str], bool]], prefix: str, delimiter: str, marker: str, max_keys: int
) -> None:
    keys = consistent_keys(nodes)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Tree(Path(tmp) / "bucket", keys)
        whole = tree.run(prefix, delimiter, marker)
        assert (whole[0], whole[1]) == reference(keys, prefix, delimiter, marker)
        found: list[str] = []
        prefixes: list[str] = []
        for _ in range(len(keys) + 2):
            page_keys, page_prefixes, truncated, next_marker = tree.run(prefix, delimiter, marker, max_keys)
            assert 0 < len(page_keys) + len(page_prefixes) <= max_keys or not truncated
            found += page_keys
            prefixes += page_prefixes
            if not truncated:
                break
            assert next_marker is not None
            marker = next_marker
        assert (found, prefixes) == (whole[0], whole[1])
