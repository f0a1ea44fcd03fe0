"""Watchers: who wants to hear of an actor's changes, each for a renewable lease.

An actor that can be watched keeps one ``Watchers``: ``renew`` on every watch request
(a new watcher, or one renewing its lease), ``notify`` with a view of itself whenever
it might have changed.  Only a view that differs from the last one told is sent, and
only to watchers whose lease has not run out, so a watcher that went away without
saying so (an API process that died) costs nothing after its lease.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Watchers:
    """The watchers of one actor, their leases and the last view they were told."""

    def __init__(self):
        self._leases: list[list] = []  # [address, expires at]; addresses are not hashable
        self._last: Any = None

    def __len__(self) -> int:
        return len(self._leases)

    def renew(self, address, lease_s: float, now: float | None = None) -> None:
        """Add ``address`` or extend its lease to ``lease_s`` from now."""
        expires = (now or time.time()) + lease_s
        for lease in self._leases:
            if lease[0] == address:
                lease[1] = expires
                return
        self._leases.append([address, expires])

    def notify(self, view: Any, send: Callable[[Any], None], now: float | None = None) -> bool:
        """Call ``send(address)`` for each live watcher if ``view`` differs from the last
        one told; returns whether it did."""
        now = now or time.time()
        self._leases = [lease for lease in self._leases if lease[1] > now]
        if not self._leases or view == self._last:
            return False
        self._last = view
        for address, _ in self._leases:
            send(address)
        return True

    def clear(self) -> None:
        self._leases = []
