"""S3 listing semantics over a sorted stream of keys: prefix, delimiter, marker, max-keys.

Pure: any under storage that can produce its keys in order gets ListObjects right by calling
``paginate``. An item is either a ListEntry or a str, a prefix the producer already collapsed
(a directory it did not descend into because the delimiter is "/").
"""

from __future__ import annotations

from collections.abc import Iterable

from cache.s3.model import ListEntry, ListPage

MAX_KEYS = 1000


def paginate(
    items: Iterable[ListEntry | str], prefix: str, delimiter: str, marker: str, max_keys: int
) -> ListPage:
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    last = None
    truncated = False
    if max_keys <= 0:
        return ListPage([], [], False, None)  # S3: max-keys=0 is an empty page that is not truncated
    for item in items:
        key = item if isinstance(item, str) else item.key
        if not key.startswith(prefix) or (key <= marker and not (isinstance(item, str) and marker.startswith(key))):
            continue  # a collapsed prefix survives a marker only when keys under it can sort after the marker
        group = None
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                group = key[: cut + len(delimiter)]
        if group is not None:
            if group == last or group == marker:
                continue  # already returned, here or on an earlier page
            if len(entries) + len(prefixes) >= max_keys:
                truncated = True
                break
            prefixes.append(group)
            last = group
        elif isinstance(item, ListEntry):
            if len(entries) + len(prefixes) >= max_keys:
                truncated = True
                break
            entries.append(item)
            last = key
    return ListPage(entries, prefixes, truncated, last if truncated else None)
