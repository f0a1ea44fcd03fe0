"""Hosted actors: many logical actors inside one Thespian actor process.

A Thespian actor under multiprocTCPBase is a process (4 MB and 10 ms to create), so a
master with one actor per job does not hold a thousand jobs.  A ``Host`` runs many
*logical* actors inside one real actor (a shard): ordinary ``ActorTypeDispatcher``
subclasses, with their ``receiveMsg_<Type>`` handlers and per-phase ``ACCEPTS``
unchanged.  It uses the hook Thespian itself uses for simpleSystemBase: every
``Actor.send``, ``createActor``, ``wakeupAfter`` and ``myAddress`` goes through the
actor's ``_myRef``, which here is a ``HostedRef`` pointing at the host.

Contract:

- A hosted actor's address is a ``LogicalAddress``: its shard's real address and its
  name.  A message for it travels between processes as an ``Envelope`` to the shard;
  inside the shard it goes on the host's queue.
- The host runs *turns*: it delivers queued messages in arrival order, with a budget
  per actor per turn (a busy actor yields; the rest of its messages wait for the next
  turn).  Sends to anything outside the host are held in an outbox until the turn
  ends, so the owner can make the turn's store writes durable first and only then let
  answers out (``Host.end_turn``).  Messages to known peers (other master actors) are
  sent as one ``MessageBatch`` per peer per turn, and messages that only carry the
  latest value of something (``coalesce_key``) replace older ones in the same batch.
- Timers live in one heap per host, armed as a single real wakeup of the owner.
- An exception in one hosted actor's handler rejects that message (``Rejected(500)``
  to whoever asked) and leaves every other hosted actor running.

The host does no store I/O of its own: ``end_turn`` takes a callable that makes the
turn durable and reports which writers failed.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thespian.actors import ActorAddress, ActorExitRequest, WakeupMessage

from actors.messages import Done, Rejected

log = logging.getLogger("mantis.hosting")

TURN_BUDGET = 200  # messages one hosted actor may handle in one turn before yielding
TIMER_SLACK_S = 0.02  # timers due this close together fire in one turn (ticks need no more precision)


class LogicalAddress(ActorAddress):
    """The address of a hosted actor: the real address of its host (``shard``) and its name."""

    def __init__(self, shard: ActorAddress, name: str):
        super().__init__(("hosted", name, getattr(shard, "addressDetails", shard)))
        self.shard = shard
        self.name = name

    def __str__(self) -> str:
        return f"{self.name}@{self.shard}"

    def __getstate__(self):
        return {"_aaddr": self._aaddr, "shard": self.shard, "name": self.name}

    def __setstate__(self, state):
        self.__dict__.update(state)


@dataclass(repr=False)
class Envelope:
    """A message for the hosted actor ``to``, sent to the process that hosts it.

    ``sender`` is the hosted sender's LogicalAddress when the sender is itself hosted
    (elsewhere); otherwise the real sender of the envelope is the sender.
    """

    to: str
    message: Any
    sender: Any = None

    def __repr__(self) -> str:
        return f"Envelope(to={self.to}, message={self.message!r})"


@dataclass(repr=False)
class MessageBatch:
    """Several messages from one sender to one receiver, delivered in order as if sent one by one."""

    messages: list = field(default_factory=list)

    def __repr__(self) -> str:  # Thespian prints every message it moves: keep it cheap
        kinds = sorted({type(m).__name__ for m in self.messages})
        return f"MessageBatch({len(self.messages)} messages: {', '.join(kinds[:5])})"


def is_answer(message: Any) -> bool:
    """Answers go to whoever asked (possibly a plain ActorSystem ask), never in a batch."""
    return isinstance(message, (Done, Rejected))


class HostedRef:
    """The ``_myRef`` of a hosted actor: its sends, timers and children go through its host."""

    hosted = True

    def __init__(self, host: Host, name: str):
        self.host, self.name = host, name
        self.address = LogicalAddress(host.address, name)
        self.globalName = name

    def actor_send(self, target, message) -> None:
        self.host.post(self.name, target, message)

    def wakeupAfter(self, period, payload=None) -> None:
        seconds = period.total_seconds() if hasattr(period, "total_seconds") else float(period)
        self.host.timers.add(seconds, self.name, payload)

    def createActor(self, actor_class, targetActorRequirements=None, globalName=None, sourceHash=None):
        return self.host.create(actor_class, globalName, parent=self.name)


class TimerHeap:
    """Every hosted actor's ``wakeupAfter`` in one heap; the owner arms one real wakeup."""

    def __init__(self):
        self._heap: list = []
        self._seq = itertools.count()

    def add(self, seconds: float, name: str, payload: Any) -> None:
        heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), name, seconds, payload))

    def next_due(self) -> float | None:
        """Monotonic time of the earliest timer, None if there is none."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[str, float, Any]]:
        """The timers due at ``now``: (actor name, period, payload), earliest first."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            _, _, name, seconds, payload = heapq.heappop(self._heap)
            due.append((name, seconds, payload))
        return due

    def __len__(self) -> int:
        return len(self._heap)


class Host:
    """Many logical actors inside the real actor ``owner`` (which must call ``post_real``).

    ``owner.send`` is used for everything leaving the host.  ``peers`` returns the real
    addresses of actors that understand ``MessageBatch``.
    """

    def __init__(self, owner, address: ActorAddress, peers: Callable[[], list] = lambda: []):
        self.owner = owner
        self.address = address
        self.peers = peers
        self.actors: dict[str, Any] = {}
        self.parents: dict[str, str | None] = {}
        self.queue: deque = deque()  # (name, message, sender)
        self.outbox: list = []       # (writer name, target, message)
        self.timers = TimerHeap()
        self.current: str | None = None  # the hosted actor whose handler is running
        self.handled = 0
        self.failures = 0

    # -- creating and addressing ------------------------------------------------------

    def create(self, actor_class, name: str | None = None, parent: str | None = None) -> LogicalAddress:
        """Instantiate ``actor_class`` as the hosted actor ``name`` (returns the existing one's address)."""
        if name is None:
            name = f"{actor_class.__name__}-{next(_anonymous)}"
        if name in self.actors:
            return self.actors[name].myAddress
        actor = actor_class()
        actor._myRef = HostedRef(self, name)
        self.actors[name] = actor
        self.parents[name] = parent
        return actor.myAddress

    def remove(self, name: str) -> None:
        """Forget the hosted actor ``name`` and its queued messages and timers fire into nothing."""
        self.actors.pop(name, None)
        self.parents.pop(name, None)

    def is_local(self, target) -> bool:
        return isinstance(target, LogicalAddress) and target.shard == self.address

    def post(self, writer: str | None, target, message) -> None:
        """A send by hosted actor ``writer`` (None: the owner itself)."""
        if self.is_local(target):
            sender = self.actors[writer].myAddress if writer in self.actors else self.address
            self.queue.append((target.name, message, sender))
        elif isinstance(target, LogicalAddress):
            sender = self.actors[writer].myAddress if writer in self.actors else None
            self.outbox.append((writer, target.shard, Envelope(target.name, message, sender)))
        else:
            self.outbox.append((writer, target, message))

    def deliver(self, name: str, message, sender) -> None:
        """Queue ``message`` for hosted actor ``name`` (from outside the host)."""
        self.queue.append((name, message, sender))

    # -- turns ------------------------------------------------------------------------

    def run_timers(self) -> None:
        """Queue a WakeupMessage for every hosted timer that is due."""
        for name, seconds, payload in self.timers.pop_due(time.monotonic() + TIMER_SLACK_S):
            if name in self.actors:
                self.queue.append((name, WakeupMessage(seconds, payload), self.actors[name].myAddress))

    def drain(self, budget: int = TURN_BUDGET) -> bool:
        """Deliver queued messages, at most ``budget`` per actor; True if some had to wait."""
        counts: dict[str, int] = defaultdict(int)
        deferred: deque = deque()
        while self.queue:
            name, message, sender = self.queue.popleft()
            if counts[name] >= budget:
                deferred.append((name, message, sender))
                continue
            counts[name] += 1
            self._deliver_one(name, message, sender)
        self.queue = deferred
        return bool(deferred)

    def _deliver_one(self, name: str, message, sender) -> None:
        actor = self.actors.get(name)
        if actor is None:
            if not is_answer(message) and not isinstance(message, (WakeupMessage, ActorExitRequest)):
                target = getattr(message, "reply_to", None) or sender
                if target is not None and not self.is_local(target):
                    self.outbox.append((None, target, Rejected(404, f"{name} does not exist (any more)")))
            return
        self.current = name
        self.handled += 1
        try:
            actor.receiveMessage(message, sender)
        except Exception as exc:  # noqa: BLE001  one actor's bug must not stop its neighbours
            self.failures += 1
            log.exception("hosted actor %s failed on %s", name, type(message).__name__)
            if not is_answer(message) and not isinstance(message, WakeupMessage):
                target = getattr(message, "reply_to", None) or sender
                if target is not None and target != actor.myAddress:
                    self.post(None, target, Rejected(500, f"{name} failed on {type(message).__name__}: "
                                                          f"{type(exc).__name__}: {exc}"))
        finally:
            self.current = None
        if isinstance(message, ActorExitRequest):
            self.remove(name)

    def end_turn(self, make_durable: Callable[[], set] | None = None) -> set:
        """Make the turn durable, then send its outbox; returns the writers whose writes failed.

        ``make_durable`` returns the names of hosted actors whose writes could not be
        stored.  What those actors sent this turn is not sent: an answer becomes
        ``Rejected(503)``, anything else is dropped (the owner puts those actors back to
        their last durable state).
        """
        failed = make_durable() if make_durable is not None else set()
        outbox, self.outbox = self.outbox, []
        peers = self.peers()
        batches: dict[str, tuple[Any, list, dict]] = {}
        for writer, target, message in outbox:
            if writer in failed:
                if is_answer(message) and isinstance(message, Done):
                    message = Rejected(503, "the change could not be stored; nothing was changed")
                elif not is_answer(message):
                    continue
            if is_answer(message) or not any(target == p for p in peers):
                self.owner.send(target, message)
                continue
            key = str(target)
            _, messages, latest = batches.setdefault(key, (target, [], {}))
            coalesce = getattr(message, "coalesce_key", None)
            if coalesce is not None:
                k = coalesce()
                if k in latest:
                    messages[latest[k]] = message  # only the latest value of it matters
                    continue
                latest[k] = len(messages)
            messages.append(message)
        for target, messages, _ in batches.values():
            self.owner.send(target, messages[0] if len(messages) == 1 else MessageBatch(messages))
        return failed


_anonymous = itertools.count(1)
