"""The API's one way into the actors: ask the actor that owns a request and await the answer.

A request about one cluster or job goes straight to the shard that hosts the cluster
(``shard_of``); listings go to the clusters manager, agents and placement to the
scheduler.  Thespian's ``ask`` blocks, so asks run on a pool of threads, each with a
private actor-system handle of its own (a handle is not for concurrent use), and the
Tornado loop awaits them.  Under simpleSystemBase, whose actors run inside the asking
thread, there is one asker.

The shards' addresses come from the manager and change when a dead shard is started
again; a request that gets no answer or is refused as undeliverable re-reads them and,
when the shard's address did change, is sent once more (it never reached the old one).
A ``Rejected`` answer becomes ``ApiError`` with its status; no answer in time is a 503.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from thespian.actors import PoisonMessage

from actors.messages import ClusterRequest, Done, GetShards, JobRequest, Rejected
from actors.shard_actor import shard_of
from mantis.model.codec import ValidationError
from webapi.watcher import Watcher

log = logging.getLogger("mantis.gateway")

ASKERS = 8
SHARDS_FRESH_S = 2.0  # how long a read of the shards' addresses is trusted


class ApiError(Exception):
    """An error the API answers with ``status`` and a JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Gateway:
    """Asks the master's actors on behalf of HTTP handlers."""

    def __init__(self, master, config: dict, askers: int = ASKERS):
        self.master = master
        self.config = config
        concurrent = getattr(master, "base", "") != "simpleSystemBase"
        self._local = threading.local()
        self._handles: list = []
        self._handles_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=askers if concurrent else 1, thread_name_prefix="actor-ask")
        self._private = concurrent
        self._watcher = None
        self.shards: list = []
        self._shards_read_at = 0.0
        self._shards_lock = threading.Lock()

    # -- handles and shards -----------------------------------------------------------

    def _handle(self):
        """This thread's actor-system handle (a private one per asker thread)."""
        if not self._private:
            return self.master.system
        handle = getattr(self._local, "handle", None)
        if handle is None:
            context = self.master.system.private()
            handle = context.__enter__()
            self._local.handle = handle
            with self._handles_lock:
                self._handles.append(context)
        return handle

    def _read_shards(self, handle) -> list:
        reply = handle.ask(self.master.manager, GetShards(), 10.0)
        if isinstance(reply, Done):
            with self._shards_lock:
                self.shards = list(reply.body["shards"])
                self._shards_read_at = time.monotonic()
        return self.shards

    def _target(self, handle, message, to: str):
        if to == "scheduler":
            return self.master.scheduler
        if to == "mesos":
            return self.master.mesos
        if isinstance(message, (ClusterRequest, JobRequest)) and to == "manager":

            fresh = time.monotonic() - self._shards_read_at < SHARDS_FRESH_S
            shards = self.shards if self.shards and fresh else self._read_shards(handle)
            if shards:
                return shards[shard_of(message.cluster_name, len(shards))]
        return self.master.manager

    def _ask_blocking(self, message: Any, to: str, timeout: float):
        handle = self._handle()
        target = self._target(handle, message, to)
        reply = handle.ask(target, message, timeout)
        if (reply is None or isinstance(reply, PoisonMessage)) and target not in (
                self.master.manager, self.master.scheduler):
            # The shard may have died and been started again elsewhere: look it up again.
            self._read_shards(handle)
            again = self._target(handle, message, to)
            if again != target:
                log.info("shard moved from %s to %s; asking again", target, again)
                reply = handle.ask(again, message, timeout)
        return reply

    # -- asking -------------------------------------------------------------------------

    async def ask(self, message: Any, to: str = "manager", timeout: float = 10.0) -> Any:
        """Send ``message`` to the actor that owns it (``to="scheduler"`` for the
        scheduler) and return the answer body."""
        validate = getattr(message, "validate", None)
        if validate is not None:
            try:
                validate()
            except ValidationError as exc:
                raise ApiError(400, str(exc)) from None
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self._pool, self._ask_blocking, message, to, timeout)
        if reply is None:
            raise ApiError(503, f"the master did not answer {type(message).__name__} within {timeout:.0f}s")
        if isinstance(reply, PoisonMessage):
            raise ApiError(503, f"the master could not deliver {type(message).__name__}; try again")
        if isinstance(reply, Rejected):
            raise ApiError(reply.status, reply.reason)
        if isinstance(reply, Done):
            return reply.body
        raise ApiError(500, f"unexpected answer {type(reply).__name__}")

    async def ask_each_shard(self, message: Any, timeout: float = 5.0) -> list:
        """Send ``message`` to every shard and return the answer bodies of those that
        answered in time (a shard being restarted is left out), for views over all shards."""
        def ask_all() -> list:
            handle = self._handle()
            bodies = []
            for shard in list(self._read_shards(handle)):
                reply = handle.ask(shard, message, timeout)
                if isinstance(reply, Done):
                    bodies.append(reply.body)
            return bodies

        return await asyncio.get_running_loop().run_in_executor(self._pool, ask_all)

    # -- watching -----------------------------------------------------------------------

    def watch(self, message, callback):
        """Have ``callback(change)`` called on this loop for every change the actors push
        about ``message`` (a WatchJob or WatchCluster); returns the unsubscribe, or None
        when this system base cannot push to the API (the caller polls instead)."""
        if not self._private:
            return None
        if self._watcher is None:

            self._watcher = Watcher(self.master.system, self.master.manager, asyncio.get_running_loop())
        return self._watcher.subscribe(message, callback)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._handles_lock:
            contexts, self._handles = self._handles, []
        for context in contexts:
            try:
                context.__exit__(None, None, None)
            except Exception:  # noqa: BLE001  the system may already be down
                pass
