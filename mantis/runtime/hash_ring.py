"""Consistent hashing of event keys onto the worker indexes of the next stage.

Each worker index owns ``POINTS_PER_INDEX`` points on a 64-bit ring; a key belongs to
the owner of the first point at or after the key's hash (wrapping around).  Adding an
index takes over only the arcs its new points cover, so scaling a stage from n to m
workers moves about (m - n) / m of the keys, all of them to the new indexes, and every
key always has exactly one owner (Mantis uses 1,000 points per connection too).

Hashes must agree between processes (every upstream worker routes on its own), so
they come from blake2b, not from Python's per-process salted ``hash``.  Looking a key
up costs a hash and a bisect, so rings cache key -> index; the cache is bounded, and a
ring is immutable, so a new set of indexes means a new ring and a fresh cache.
"""
from __future__ import annotations

import functools
import hashlib
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

POINTS_PER_INDEX = 1000
# Keys remembered per ring; past this the cache starts over (high-cardinality keys
# such as request ids would otherwise grow it without bound).
CACHE_LIMIT = 1 << 17
_RING_SIZE = 1 << 64


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process and on every run."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def key_text(key: Any) -> str:
    """The text a key is hashed by: a str as is, anything else its ``str()``."""
    return key if isinstance(key, str) else str(key)


@functools.lru_cache(maxsize=1024)
def _points_of(index: int, points: int) -> tuple[int, ...]:
    # The same index always gets the same points, so rings over overlapping index
    # sets agree wherever they can; cached because rings are rebuilt on every change.
    return tuple(stable_hash(f"worker-{index}-point-{p}") for p in range(points))


class HashRing:
    """An immutable ring over ``indexes`` (worker indexes, >= 0), each with ``points`` points.

    ``index_of(key)`` is the index that owns ``key``.  ValueError for an empty index
    set or a non-positive point count.
    """

    def __init__(self, indexes: Iterable[int], points: int = POINTS_PER_INDEX):
        self.indexes = tuple(sorted(set(indexes)))
        if not self.indexes:
            raise ValueError("a hash ring needs at least one index")
        if points < 1:
            raise ValueError("a hash ring needs at least one point per index")
        # Ties between two indexes' points (astronomically rare) go to the lower index,
        # deterministically, because the pairs sort by (position, index).
        ring = sorted((position, index) for index in self.indexes
                      for position in _points_of(index, points))
        self._positions = [position for position, _ in ring]
        self._owners = [index for _, index in ring]
        self.cache: dict[Any, int] = {}  # key -> index; readable by hot loops

    def index_of(self, key: Any) -> int:
        """The index owning ``key`` (hashed by ``key_text``); TypeError if ``key`` is unhashable."""
        index = self.cache.get(key)
        if index is None:
            index = self.index_of_hash(stable_hash(key_text(key)))
            if len(self.cache) >= CACHE_LIMIT:
                self.cache.clear()
            self.cache[key] = index
        return index

    def index_of_hash(self, position: int) -> int:
        """The index owning ring position ``position`` (0 <= position < 2**64)."""
        slot = bisect_left(self._positions, position % _RING_SIZE)
        return self._owners[slot if slot < len(self._owners) else 0]
