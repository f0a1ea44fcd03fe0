"""The API's watches: actors push a job's or a cluster's changes to the API process.

One thread holds a private actor-system handle and listens.  A watch (``WatchJob`` or
``WatchCluster``) is sent to the clusters manager, which forwards it to the owning
shard with this handle as the reply address; the job or cluster actor then sends a
``JobChanged`` or ``ClusterChanged`` there whenever what a stream shows changes.
Watches are leases: every ``RENEW_S`` the thread sends each one again, which also
re-establishes a watch lost with a shard that was restarted.  Subscribers of the same
key share one watch; each gets every change on the Tornado loop through its callback.

Only for a system base whose handles can listen on their own thread (multiprocTCPBase);
``Watcher.supported`` says so.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from actors.messages import ClusterChanged, JobChanged, Rejected, WatchCluster, WatchJob

log = logging.getLogger("mantis.watcher")

RENEW_S = 5.0
LEASE_S = 15.0


def watch_key(message) -> tuple:
    """What a watch is about: ("job", id) or ("cluster", name)."""
    if isinstance(message, (WatchJob, JobChanged)):
        return ("job", message.job_id)
    return ("cluster", message.name)


class Watcher:
    """Listens for pushed changes on its own thread and hands them to subscribers."""

    def __init__(self, system, manager, loop: asyncio.AbstractEventLoop):
        self.system, self.manager, self.loop = system, manager, loop
        self._commands: queue.Queue = queue.Queue()
        self._subscribers: dict[tuple, dict[int, Callable[[Any], None]]] = {}
        self._watches: dict[tuple, list] = {}  # key -> [message, last sent]
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-watcher", daemon=True)
        self._thread.start()

    def subscribe(self, message: WatchJob | WatchCluster, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(change)`` on the loop for every change; returns the unsubscribe."""
        message.lease_s = LEASE_S
        sid = next(self._ids)
        self._commands.put(("add", watch_key(message), sid, message, callback))
        return lambda: self._commands.put(("remove", watch_key(message), sid, None, None))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        with self.system.private() as handle:
            while not self._stop.is_set():
                self._take_commands(handle)
                self._renew(handle)
                try:
                    change = handle.listen(0.1)
                except Exception as exc:  # noqa: BLE001  the system is going down
                    log.info("watcher stops: %s", exc)
                    return
                if isinstance(change, (JobChanged, ClusterChanged)):
                    self._dispatch(change)
                elif isinstance(change, Rejected):
                    log.info("a watch was refused: %s", change.reason)

    def _take_commands(self, handle) -> None:
        while True:
            try:
                op, key, sid, message, callback = self._commands.get_nowait()
            except queue.Empty:
                return
            if op == "add":
                self._subscribers.setdefault(key, {})[sid] = callback
                if key not in self._watches:
                    self._watches[key] = [message, 0.0]
            else:
                subscribers = self._subscribers.get(key, {})
                subscribers.pop(sid, None)
                if not subscribers:
                    self._subscribers.pop(key, None)
                    self._watches.pop(key, None)  # its lease runs out on the actor's side

    def _renew(self, handle) -> None:
        now = time.monotonic()
        for watch in self._watches.values():
            if now - watch[1] >= RENEW_S:
                watch[1] = now
                handle.tell(self.manager, watch[0])

    def _dispatch(self, change) -> None:
        key = watch_key(change)
        for callback in list(self._subscribers.get(key, {}).values()):
            self.loop.call_soon_threadsafe(callback, change)
        if getattr(change, "final", False):
            self._watches.pop(key, None)
