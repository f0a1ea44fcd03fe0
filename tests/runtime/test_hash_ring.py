"""Consistent hashing: one owner per key, stable across processes, few keys move on scaling."""
import os
import subprocess
import sys
from collections import Counter

import pytest

from mantis.runtime.hash_ring import POINTS_PER_INDEX, HashRing

KEYS = [f"user-{k}" for k in range(20_000)]


def owners(ring, keys=KEYS):
    return {key: ring.index_of(key) for key in keys}


def test_every_key_lands_on_exactly_one_connected_index_every_time():
    ring = HashRing([0, 1, 2])
    first = owners(ring)
    assert set(first.values()) == {0, 1, 2}
    assert owners(ring) == first  # asking again (now from the cache) gives the same owner
    assert owners(HashRing([2, 0, 1])) == first  # order of indexes does not matter


def test_a_ring_has_a_thousand_points_per_index():
    ring = HashRing([0, 1, 2, 3])
    assert POINTS_PER_INDEX == 1000
    assert Counter(ring._owners) == {0: 1000, 1: 1000, 2: 1000, 3: 1000}


def test_keys_spread_evenly_over_the_indexes():
    shares = Counter(owners(HashRing(range(4))).values())
    for index in range(4):
        assert abs(shares[index] / len(KEYS) - 0.25) < 0.03, shares


def test_scaling_from_two_to_four_moves_only_keys_to_the_new_indexes_and_about_half():
    before = owners(HashRing([0, 1]))
    after = owners(HashRing([0, 1, 2, 3]))
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] in (2, 3) for key in moved)  # nothing moves between 0 and 1
    assert all(before[key] == after[key] for key in KEYS if after[key] in (0, 1))
    assert 0.45 < len(moved) / len(KEYS) < 0.55  # the expected share is 2/4


def test_losing_one_index_moves_only_its_keys():
    before = owners(HashRing([0, 1, 2, 3]))
    after = owners(HashRing([0, 1, 3]))
    assert {key for key in KEYS if before[key] != after[key]} == {key for key in KEYS if before[key] == 2}


def test_non_string_keys_hash_by_their_text_form():
    ring = HashRing([0, 1, 2, 3])
    assert ring.index_of(42) == ring.index_of("42")
    assert ring.index_of(("a", 1)) == ring.index_of("('a', 1)")
    with pytest.raises(TypeError):
        ring.index_of(["unhashable"])


def test_other_processes_compute_the_same_owners_whatever_their_hash_seed():
    ring = HashRing([0, 1, 2, 3])
    expected = [ring.index_of(k) for k in KEYS[:200]]
    code = ("from mantis.runtime.hash_ring import HashRing; r = HashRing([0, 1, 2, 3]); "
            "print([r.index_of(f'user-{k}') for k in range(200)])")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=root)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, env=env, check=True)
    assert result.stdout.strip() == str(expected)


def test_a_ring_needs_an_index():
    with pytest.raises(ValueError):
        HashRing([])
