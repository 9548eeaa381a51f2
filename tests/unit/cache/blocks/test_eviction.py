"""cache.blocks.eviction: LRU order, S3-FIFO's treatment of one-hit wonders and ghosts, and invariants under random use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.blocks.eviction import LRU, POLICIES, S3FIFO, EvictionPolicy


def drain(policy: EvictionPolicy) -> list[str]:
    """Evict everything, as the block store does: victim(), then remove() it."""
    order = []
    while (victim := policy.victim()) is not None:
        assert victim not in order, f"{victim} returned again after its removal"
        order.append(victim)
        policy.remove(victim)
        assert len(order) < 10_000
    return order


# ---- LRU ----------------------------------------------------------------------------------------


def test_lru_victim_is_the_least_recent() -> None:
    lru = LRU()
    for name in "abcd":
        lru.insert(name, 1)
    assert lru.victim() == "a"
    assert lru.victim() == "a"  # victim() alone evicts nothing
    lru.touch("a")
    assert lru.victim() == "b"
    lru.touch("c")
    assert drain(lru) == ["b", "d", "a", "c"]


def test_lru_remove_and_unknown_ids() -> None:
    lru = LRU()
    lru.remove("ghost")
    lru.touch("ghost")
    assert lru.victim() is None
    for name in "abc":
        lru.insert(name, 10)
    lru.remove("b")
    lru.remove("nope")
    lru.touch("nope")
    assert drain(lru) == ["a", "c"]
    assert lru.victim() is None


def test_lru_reinsert_moves_to_the_back() -> None:
    lru = LRU()
    for name in "abc":
        lru.insert(name, 1)
    lru.insert("a", 2)
    assert drain(lru) == ["b", "c", "a"]


# ---- S3-FIFO ------------------------------------------------------------------------------------


def test_s3fifo_one_hit_wonders_leave_before_blocks_read_twice() -> None:
    fifo = S3FIFO()
    names = [f"b{i:02d}" for i in range(20)]
    for name in names:
        fifo.insert(name, 1)
    twice = set(names[::3])  # read again: a touch after the insert
    for name in twice:
        fifo.touch(name)
    order = drain(fifo)
    assert sorted(order) == sorted(names)
    first = order[:len(names) - len(twice)]
    assert set(first) == set(names) - twice, order
    assert first == [n for n in names if n not in twice]  # and among themselves first in, first out


def test_s3fifo_blocks_read_twice_outlive_newer_one_hit_wonders() -> None:
    fifo = S3FIFO()
    fifo.insert("hot", 1)
    fifo.touch("hot")
    for i in range(30):
        fifo.insert(f"cold{i}", 1)
        victim = fifo.victim()
        assert victim is not None and victim != "hot"
        fifo.remove(victim)
    assert drain(fifo) == ["hot"]


def test_s3fifo_ghost_hit_goes_straight_to_main() -> None:
    fifo = S3FIFO()
    fifo.insert("a", 1)
    assert fifo.victim() == "a"
    fifo.remove("a")  # evicted from the small queue: remembered as a ghost
    assert fifo.victim() is None
    fifo.insert("a", 1)  # a ghost hit: main
    for name in ("x", "y", "z"):
        fifo.insert(name, 1)  # new one-hit wonders: small
    assert drain(fifo) == ["x", "y", "z", "a"]


def test_s3fifo_without_a_ghost_is_plain_fifo() -> None:
    fifo = S3FIFO()
    for name in ("a", "x", "y", "z"):
        fifo.insert(name, 1)
    assert drain(fifo) == ["a", "x", "y", "z"]


def test_s3fifo_main_gets_second_chances() -> None:
    fifo = S3FIFO()
    for name in ("m1", "m2", "m3"):  # into main by way of the ghost queue
        fifo.insert(name, 1)
        fifo.remove(name)
        fifo.insert(name, 1)
    fifo.touch("m1")
    assert drain(fifo) == ["m2", "m3", "m1"]


@pytest.mark.parametrize("make", [LRU, S3FIFO])
def test_empty_policies(make: Callable[[], EvictionPolicy]) -> None:
    policy = make()
    assert policy.victim() is None
    policy.remove("unknown")
    policy.touch("unknown")
    assert policy.victim() is None


@pytest.mark.parametrize("make", [LRU, S3FIFO])
def test_remove_of_unknown_ids_is_harmless(make: Callable[[], EvictionPolicy]) -> None:
    reference, policy = make(), make()
    for p in (reference, policy):
        for i in range(10):
            p.insert(f"id{i}", 100 + i)
        p.touch("id3")
    for i in range(10, 20):
        policy.remove(f"id{i}")
        policy.touch(f"id{i}")
    assert drain(policy) == drain(reference)


def test_policy_names() -> None:
    assert POLICIES["lru"] is LRU and POLICIES["s3fifo"] is S3FIFO


# ---- invariants under random operation sequences ------------------------------------------------

IDS = [f"id{i}" for i in range(12)]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.sampled_from(IDS), st.integers(0, 5000)),
        st.tuples(st.just("touch"), st.sampled_from(IDS), st.just(0)),
        st.tuples(st.just("remove"), st.sampled_from(IDS), st.just(0)),
        st.tuples(st.just("evict"), st.just(""), st.just(0)),
        st.tuples(st.just("victim"), st.just(""), st.just(0)),
    ),
    max_size=120,
)


@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_victims_are_tracked_and_nothing_is_lost_or_duplicated(name: str, ops: list[tuple[str, str, int]]) -> None:
    policy: EvictionPolicy = POLICIES[name]()
    tracked: set[str] = set()
    for op, block, size in ops:
        if op == "insert":
            if block in tracked:
                policy.remove(block)  # the block store replaces a block by removing it first
            policy.insert(block, size)
            tracked.add(block)
        elif op == "touch":
            policy.touch(block)
        elif op == "remove":
            policy.remove(block)
            tracked.discard(block)
        else:
            victim = policy.victim()
            if tracked:
                assert victim in tracked
            else:
                assert victim is None
            if op == "evict" and victim is not None:
                policy.remove(victim)
                tracked.discard(victim)
    order = drain(policy)
    assert sorted(order) == sorted(tracked)


@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=100, deadline=None)
@given(ops=operations)
def test_reinserting_a_tracked_id_does_not_duplicate_it(name: str, ops: list[tuple[str, str, int]]) -> None:
    policy: EvictionPolicy = POLICIES[name]()
    tracked: set[str] = set()
    for op, block, size in ops:
        if op == "insert":
            policy.insert(block, size)  # no remove() first, even when already tracked
            tracked.add(block)
        elif op == "touch":
            policy.touch(block)
        elif op == "remove":
            policy.remove(block)
            tracked.discard(block)
        elif op == "evict":
            victim = policy.victim()
            assert (victim in tracked) if tracked else victim is None
            if victim is not None:
                policy.remove(victim)
                tracked.discard(victim)
    assert sorted(drain(policy)) == sorted(tracked)


def test_s3fifo_reinsert_of_a_promoted_block_keeps_one_entry() -> None:
    fifo = S3FIFO()
    fifo.insert("a", 1)
    fifo.touch("a")
    fifo.insert("b", 1)
    assert fifo.victim() == "b"  # and "a", read twice, went to main on the way
    fifo.insert("a", 1)
    assert drain(fifo) == ["b", "a"]
