"""Rendezvous placement: golden vectors pin the function; properties hold for any membership."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cache.cluster.placement import owner, ranked, weight

GOLDEN = json.loads((Path(__file__).parent / "hrw_golden.json").read_text())
BLOCKS = [hashlib.sha256(f"block-{i}".encode()).hexdigest() for i in range(10_000)]


def test_golden_vectors() -> None:
    workers = GOLDEN["workers"]
    assert len(GOLDEN["vectors"]) >= 20
    for vector in GOLDEN["vectors"]:
        assert owner(vector["block"], workers) == vector["owner"]
        assert ranked(vector["block"], workers) == vector["ranked"]
        for worker, value in vector["weights"].items():
            assert weight(worker, vector["block"]) == int(value)


def test_golden_owners_are_not_all_the_same_worker() -> None:
    assert len({vector["owner"] for vector in GOLDEN["vectors"]}) >= 3


def test_weight_is_blake2b_of_worker_nul_block() -> None:
    expected = int.from_bytes(hashlib.blake2b(b"w1\x00b1", digest_size=8).digest(), "big")
    assert weight("w1", "b1") == expected


def test_balance_within_a_few_percent_over_10k_blocks() -> None:
    for n in (3, 5, 8):
        workers = [f"http://10.0.0.{i}:29998" for i in range(n)]
        counts = Counter(owner(block, workers) for block in BLOCKS)
        fair = len(BLOCKS) / n
        assert set(counts) == set(workers)
        assert all(abs(count - fair) / fair < 0.06 for count in counts.values()), counts


def test_removing_a_worker_moves_only_its_blocks() -> None:
    workers = [f"w{i}" for i in range(5)]
    before = {block: owner(block, workers) for block in BLOCKS}
    after = {block: owner(block, workers[:2] + workers[3:]) for block in BLOCKS}
    moved = {block for block in BLOCKS if before[block] != after[block]}
    assert moved == {block for block in BLOCKS if before[block] == "w2"}


def test_adding_a_worker_takes_about_a_fair_share_and_only_for_itself() -> None:
    workers = [f"w{i}" for i in range(4)]
    before = {block: owner(block, workers) for block in BLOCKS}
    after = {block: owner(block, [*workers, "w4"]) for block in BLOCKS}
    moved = [block for block in BLOCKS if before[block] != after[block]]
    assert all(after[block] == "w4" for block in moved)
    assert abs(len(moved) / len(BLOCKS) - 0.2) < 0.03


def test_owner_of_no_workers_is_none() -> None:
    assert owner(BLOCKS[0], []) is None
    assert ranked(BLOCKS[0], []) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8, unique=True), st.text(max_size=20))
def test_owner_is_first_in_ranking_and_independent_of_order(workers: list[str], block: str) -> None:
    order = ranked(block, workers)
    assert sorted(order) == sorted(workers)
    assert owner(block, workers) == order[0] == owner(block, list(reversed(workers)))
