"""The API's one way into the actors: ask a top-level actor and await the answer.

Thespian's ``ask`` blocks, and an ActorSystem handle is not meant for concurrent use,
so every ask runs on one dedicated thread and the Tornado loop awaits it.  A
``Rejected`` answer becomes ``ApiError`` with its status; no answer in time is a 503.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actors.messages import Done, Rejected


class ApiError(Exception):
    """An error the API answers with ``status`` and a JSON ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Gateway:
    """Asks the master's actors on behalf of HTTP handlers."""

    def __init__(self, master, config: dict):
        self.master = master
        self.config = config
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="actor-ask")

    async def ask(self, message: Any, to: str = "manager", timeout: float = 10.0) -> Any:
        """Send ``message`` to the manager (or ``to="scheduler"``) and return the answer body."""
        target = self.master.scheduler if to == "scheduler" else self.master.manager
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self._pool, self.master.system.ask, target, message, timeout)
        if reply is None:
            raise ApiError(503, f"the master did not answer {type(message).__name__} within {timeout:.0f}s")
        if isinstance(reply, Rejected):
            raise ApiError(reply.status, reply.reason)
        if isinstance(reply, Done):
            return reply.body
        raise ApiError(500, f"unexpected answer {type(reply).__name__}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
