"""ListObjects semantics of cache.s3.listing.paginate: prefix, delimiter, marker, max-keys (S3 ListObjects docs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.s3.listing import paginate
from cache.s3.model import ListEntry, ListPage

KEYS = ["a", "a-b", "a/", "a/1", "a/2", "a/b/c", "a0", "b", "b/c/d", "c"]


def entry(key: str) -> ListEntry:
    return ListEntry(key, len(key), f"etag-{key}", 1_700_000_000.0)


def entries(keys: Iterable[str]) -> list[ListEntry]:
    return [entry(k) for k in sorted(keys)]


def listing(page: ListPage) -> tuple[list[str], list[str], bool, str | None]:
    return [e.key for e in page.entries], page.common_prefixes, page.is_truncated, page.next_marker


def run(prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = 1000,
        keys: Sequence[str] = KEYS) -> tuple[list[str], list[str], bool, str | None]:
    return listing(paginate(entries(keys), prefix, delimiter, marker, max_keys))


def test_everything_in_order() -> None:
    assert run() == (sorted(KEYS), [], False, None)


def test_entries_are_passed_through_unchanged() -> None:
    page = paginate(entries(["x"]), "", "", "", 10)
    assert page.entries == [entry("x")]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a", ["a", "a-b", "a/", "a/1", "a/2", "a/b/c", "a0"]),
        ("a/", ["a/", "a/1", "a/2", "a/b/c"]),  # the "a/" object itself matches its own prefix
        ("a/b", ["a/b/c"]),  # a prefix may end mid-name
        ("b/c/d", ["b/c/d"]),
        ("b/c/d/", []),
        ("z", []),
        ("A", []),  # keys are case-sensitive
    ],
)
def test_prefix(prefix: str, expected: list[str]) -> None:
    assert run(prefix) == (expected, [], False, None)


@pytest.mark.parametrize(
    ("prefix", "delimiter", "keys", "prefixes"),
    [
        ("", "/", ["a", "a-b", "a0", "b", "c"], ["a/", "b/"]),
        ("a", "/", ["a", "a-b", "a0"], ["a/"]),
        ("a/", "/", ["a/", "a/1", "a/2"], ["a/b/"]),  # the delimiter is looked for after the prefix only
        ("b/", "/", [], ["b/c/"]),
        ("b/c/", "/", ["b/c/d"], []),
        ("", "-", ["a", "a/", "a/1", "a/2", "a/b/c", "a0", "b", "b/c/d", "c"], ["a-"]),
        ("", "/c", ["a", "a-b", "a/", "a/1", "a/2", "a0", "b", "c"], ["a/b/c", "b/c"]),  # multi-character
        ("", "b", ["a", "a/", "a/1", "a/2", "a0", "c"], ["a-b", "a/b", "b"]),  # prefix == whole key "b"
        ("", "zz", KEYS, []),  # a delimiter that never occurs
    ],
)
def test_delimiter(prefix: str, delimiter: str, keys: list[str], prefixes: list[str]) -> None:
    assert run(prefix, delimiter) == (keys, prefixes, False, None)


@pytest.mark.parametrize(
    ("marker", "delimiter", "keys", "prefixes"),
    [
        ("a/1", "", ["a/2", "a/b/c", "a0", "b", "b/c/d", "c"], []),  # strictly after the marker
        ("a/10", "", ["a/2", "a/b/c", "a0", "b", "b/c/d", "c"], []),  # the marker need not be a key
        ("", "/", ["a", "a-b", "a0", "b", "c"], ["a/", "b/"]),
        ("a/", "/", ["a0", "b", "c"], ["b/"]),  # a common prefix as marker: none of its keys again
        ("a-b", "/", ["a0", "b", "c"], ["a/", "b/"]),
        ("b", "/", ["c"], ["b/"]),
        ("b/", "/", ["c"], []),
        ("c", "/", [], []),
        ("zzz", "", [], []),
        ("0", "", KEYS, []),  # before everything
    ],
)
def test_marker(marker: str, delimiter: str, keys: list[str], prefixes: list[str]) -> None:
    assert run("", delimiter, marker) == (keys, prefixes, False, None)


def test_marker_inside_a_common_prefix_still_rolls_up_later_keys() -> None:
    # keys after the marker that share a common prefix are still reported as that prefix
    assert run("", "/", "a/1") == (["a0", "b", "c"], ["a/", "b/"], False, None)


def test_max_keys_counts_keys_and_prefixes_together() -> None:
    pages = []
    marker = ""
    while True:
        page = run("", "/", marker, 2)
        pages.append(page)
        if not page[2]:
            break
        assert page[3] is not None
        marker = page[3]
    assert pages == [
        (["a", "a-b"], [], True, "a-b"),
        (["a0"], ["a/"], True, "a0"),  # the next marker is the last key or prefix, in key order
        (["b"], ["b/"], True, "b/"),
        (["c"], [], False, None),
    ]


def test_truncated_only_when_more_remain() -> None:
    assert run("", "/", "", 7) == (["a", "a-b", "a0", "b", "c"], ["a/", "b/"], False, None)
    assert run("", "/", "", 6) == (["a", "a-b", "a0", "b"], ["a/", "b/"], True, "b/")
    assert run("", "", "", len(KEYS)) == (sorted(KEYS), [], False, None)
    assert run("", "", "", len(KEYS) - 1)[2:] == (True, "b/c/d")


def test_later_keys_of_the_last_prefix_do_not_truncate() -> None:
    # the page ends with prefix "b/": more keys under "b/" are not more results
    keys = ["a", "b/1", "b/2", "b/3"]
    assert run("", "/", "", 2, keys) == (["a"], ["b/"], False, None)


def test_max_keys_zero_returns_nothing_and_is_not_truncated() -> None:
    assert run(max_keys=0) == ([], [], False, None)
    assert run("", "/", "", 0) == ([], [], False, None)


def test_empty_listing() -> None:
    assert run(keys=[]) == ([], [], False, None)
    assert run("x", "/", "y", 5, keys=[]) == ([], [], False, None)


# ---- pre-collapsed prefixes (a producer that did not descend into a directory) ---------------------


def test_str_items_are_common_prefixes() -> None:
    items: list[ListEntry | str] = [entry("a"), "a/", entry("b"), "c/"]
    assert listing(paginate(items, "", "/", "", 10)) == (["a", "b"], ["a/", "c/"], False, None)


def test_str_item_equal_to_the_marker_is_not_repeated() -> None:
    items: list[ListEntry | str] = [entry("a"), "a/", entry("b")]
    assert listing(paginate(items, "", "/", "a/", 10)) == (["b"], [], False, None)


def test_str_item_wholly_before_the_marker_is_skipped() -> None:
    # every key under "a/" sorts before "b": nothing of it lies after the marker
    items: list[ListEntry | str] = [entry("a"), "a/", entry("b"), "c/"]
    assert listing(paginate(items, "", "/", "b", 10)) == ([], ["c/"], False, None)


def test_str_item_containing_the_marker_is_kept() -> None:
    # the marker lies inside "a/": keys under "a/" after it may exist, so the prefix stays
    items: list[ListEntry | str] = ["a/", entry("b")]
    assert listing(paginate(items, "", "/", "a/x", 10)) == (["b"], ["a/"], False, None)


def test_str_items_outside_the_prefix_are_skipped() -> None:
    items: list[ListEntry | str] = ["a/", entry("b/1"), "b/c/"]
    assert listing(paginate(items, "b/", "/", "", 10)) == (["b/1"], ["b/c/"], False, None)


def test_str_items_count_toward_max_keys() -> None:
    items: list[ListEntry | str] = ["a/", "b/", entry("c")]
    assert listing(paginate(items, "", "/", "", 2)) == ([], ["a/", "b/"], True, "b/")


# ---- property: paging reproduces the unpaged listing ------------------------------------------------


def reference(keys: Iterable[str], prefix: str, delimiter: str, marker: str) -> tuple[list[str], list[str]]:
    """The whole (unpaged) listing, straight from the S3 rules."""
    found: list[str] = []
    prefixes: list[str] = []
    for key in sorted(set(keys)):
        if not key.startswith(prefix) or key <= marker:
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            found.append(key)
        else:
            group = key[: cut + len(delimiter)]
            if group != marker and group not in prefixes:
                prefixes.append(group)
    return found, prefixes


def collapsed(keys: Iterable[str], prefix: str) -> list[ListEntry | str]:
    """What a directory walk with delimiter "/" yields: sub-directories below the prefix as str items."""
    items: dict[str, ListEntry | str] = {}
    for key in set(keys):
        cut = key.find("/", len(prefix)) if key.startswith(prefix) else -1
        if cut >= 0:
            items[key[: cut + 1]] = key[: cut + 1]
        else:
            items[key] = entry(key)
    return [items[k] for k in sorted(items)]


def page_through(items: Sequence[ListEntry | str], prefix: str, delimiter: str, max_keys: int,
                 start: str = "") -> tuple[list[str], list[str]]:
    found: list[str] = []
    prefixes: list[str] = []
    marker = start
    for _ in range(len(items) + 2):
        page = paginate(items, prefix, delimiter, marker, max_keys)
        assert len(page.entries) + len(page.common_prefixes) <= max_keys
        found += [e.key for e in page.entries]
        prefixes += page.common_prefixes
        if not page.is_truncated:
            assert page.next_marker is None
            return found, prefixes
        assert page.entries or page.common_prefixes  # a truncated page makes progress
        last = max([e.key for e in page.entries] + page.common_prefixes)
        assert page.next_marker == last
        marker = page.next_marker
    raise AssertionError("paging did not terminate")


KEY = st.text(alphabet="ab/-0", min_size=1, max_size=6)
SMALL_PREFIX = st.text(alphabet="ab/-0", max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(KEY, max_size=25),
    prefix=SMALL_PREFIX,
    delimiter=st.sampled_from(["", "/", "-", "b/", "0"]),
    start=st.one_of(st.just(""), KEY),
    max_keys=st.integers(min_value=1, max_value=6),
)
def test_paging_reproduces_the_unpaged_listing(
    keys: list[str], prefix: str, delimiter: str, start: str, max_keys: int
) -> None:
    items = entries(set(keys))
    whole = paginate(items, prefix, delimiter, start, 1000)
    assert ([e.key for e in whole.entries], whole.common_prefixes) == reference(keys, prefix, delimiter, start)
    assert not whole.is_truncated
    assert page_through(items, prefix, delimiter, max_keys, start) == reference(keys, prefix, delimiter, start)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(KEY, max_size=25),
    prefix=SMALL_PREFIX,
    max_keys=st.integers(min_value=1, max_value=6),
)
def test_paging_over_pre_collapsed_items_reproduces_the_unpaged_listing(
    keys: list[str], prefix: str, max_keys: int
) -> None:
    items = collapsed(keys, prefix)
    expected = reference(keys, prefix, "/", "")
    whole = paginate(items, prefix, "/", "", 1000)
    assert ([e.key for e in whole.entries], whole.common_prefixes) == expected
    assert page_through(items, prefix, "/", max_keys) == expected
