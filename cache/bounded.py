"""A mapping with a bound: at most so many entries, and optionally at most so much weight (bytes, say).

The in-memory caches of every wing (object metadata, holder lookups, where sequential readers left off,
small hot objects) are this one type, so each says only what it keeps and how much. What was put longest
ago leaves first; a put moves a key to the young end, a get does not (a lookup on the hot path stays one
dict probe).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    def __init__(self, max_entries: int, weigh: Callable[[V], int] | None = None, max_weight: int = 0) -> None:
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh
        self.weight = 0  # the sum of weigh(value) over what is held (0 without weigh)
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self.pop(key)
        self._items[key] = value
        if self._weigh is not None:
            self.weight += self._weigh(value)
        while len(self._items) > self.max_entries or (self._weigh is not None and self.weight > self.max_weight):
            _, old = self._items.popitem(last=False)
            if self._weigh is not None:
                self.weight -= self._weigh(old)

    def pop(self, key: K) -> V | None:
        value = self._items.pop(key, None)
        if value is not None and self._weigh is not None:
            self.weight -= self._weigh(value)
        return value

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0

    def keys(self) -> list[K]:
        return list(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._items))
