"""Eviction policies for the block store, behind one small interface: LRU and S3-FIFO.

S3-FIFO (Yang et al., SOSP 2023) keeps new blocks in a small FIFO, promotes those read again to a main
FIFO and remembers recently evicted ids in a ghost FIFO; on object-cache traces it beats LRU because
one-hit wonders leave quickly. ``benchmarks/eviction_hit_ratio.py`` compares the two on a skewed trace.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class EvictionPolicy(Protocol):
    def insert(self, block_id: str, size: int) -> None: ...
    def touch(self, block_id: str) -> None: ...
    def remove(self, block_id: str) -> None: ...
    def victim(self) -> str | None:
        """The block to evict next (still tracked until remove() is called), or None if empty."""
        ...


class LRU:
    def __init__(self) -> None:
        self._order: OrderedDict[str, int] = OrderedDict()

    def insert(self, block_id: str, size: int) -> None:
        self._order[block_id] = size
        self._order.move_to_end(block_id)

    def touch(self, block_id: str) -> None:
        if block_id in self._order:
            self._order.move_to_end(block_id)

    def remove(self, block_id: str) -> None:
        self._order.pop(block_id, None)

    def victim(self) -> str | None:
        return next(iter(self._order), None)


class S3FIFO:
    """Small (10% of bytes) and main FIFOs with 2-bit frequencies, and a ghost FIFO of evicted ids."""

    def __init__(self, small_ratio: float = 0.1) -> None:
        self.small_ratio = small_ratio
        self._small: OrderedDict[str, int] = OrderedDict()
        self._main: OrderedDict[str, int] = OrderedDict()
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self._freq: dict[str, int] = {}
        self._small_bytes = 0
        self._main_bytes = 0

    def insert(self, block_id: str, size: int) -> None:
        if block_id in self._small:  # tracked already: a new size, same place (never a second entry)
            self._small_bytes += size - self._small[block_id]
            self._small[block_id] = size
            return
        if block_id in self._main:
            self._main_bytes += size - self._main[block_id]
            self._main[block_id] = size
            return
        if block_id in self._ghost:
            del self._ghost[block_id]
            self._main[block_id] = size
            self._main_bytes += size
        else:
            self._small[block_id] = size
            self._small_bytes += size
        self._freq[block_id] = 0

    def touch(self, block_id: str) -> None:
        if block_id in self._freq:
            self._freq[block_id] = min(self._freq[block_id] + 1, 3)

    def remove(self, block_id: str) -> None:
        if block_id in self._small:
            self._small_bytes -= self._small.pop(block_id)
            self._remember_ghost(block_id)
        elif block_id in self._main:
            self._main_bytes -= self._main.pop(block_id)
        self._freq.pop(block_id, None)

    def _remember_ghost(self, block_id: str) -> None:
        self._ghost[block_id] = None
        while len(self._ghost) > max(len(self._small) + len(self._main), 16):
            self._ghost.popitem(last=False)

    def victim(self) -> str | None:
        total = self._small_bytes + self._main_bytes
        while self._small or self._main:
            if self._small and (self._small_bytes >= self.small_ratio * total or not self._main):
                block_id, size = next(iter(self._small.items()))
                if self._freq.get(block_id, 0) > 0:  # read again while small: promote instead of evicting
                    del self._small[block_id]
                    self._small_bytes -= size
                    self._main[block_id] = size
                    self._main_bytes += size
                    self._freq[block_id] = 0
                    continue
                return block_id
            block_id, size = next(iter(self._main.items()))
            if self._freq.get(block_id, 0) > 0:  # second chance: back of the queue, one less credit
                self._main.move_to_end(block_id)
                self._freq[block_id] -= 1
                continue
            return block_id
        return None


POLICIES = {"lru": LRU, "s3fifo": S3FIFO}
