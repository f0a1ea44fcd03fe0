"""What every Mantis actor shares: dispatch by message type, gated by the actor's phase.

An actor declares ``ACCEPTS``: for each phase (a short string such as "new" or
"running"), the message types it handles there.  Any other message of ours is
answered with ``Rejected(409, reason)`` naming the actor, its phase and the message,
and logged; Thespian's own system messages always pass to their handlers.

Messages travel between master actors in batches where many go to one place
(``send_batched``: one ``MessageBatch`` per target per handled message, or per
``BATCH_WINDOW_S`` for an actor that sets one), because Thespian's send path scans its
queue of pending sends on every send and drops sends past about a thousand queued.
A hosted actor's address (``LogicalAddress``) is reached through its shard.

Thespian also drops timers that fall due while a process has that many sends queued,
so an actor never relies on one wakeup arriving: ``wake_within`` re-arms a wakeup that
is overdue, and ticks are checked after every message.
"""
from __future__ import annotations

import logging
import time

from thespian.actors import ActorSystemMessage, ActorTypeDispatcher

from actors.hosting import Envelope, LogicalAddress, MessageBatch
from actors.messages import Done, Rejected, Tick

log = logging.getLogger("mantis.actors")

_WINDOW = "mantis-window"  # the payload of a wake_within wakeup


class MantisActor(ActorTypeDispatcher):
    """Base actor: phase-gated type dispatch and reply helpers."""

    ACCEPTS: dict[str, tuple[type, ...]] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase = "new"
        self.exiting = False
        self._tick_generation = 0
        self._tick_interval: float | None = None
        self._last_tick = 0.0          # monotonic time of the last tick handled
        self._depth = 0                # > 0 while a message is being handled
        self._batches: dict[str, tuple] = {}
        self._batch_opened = 0.0       # monotonic time the oldest unsent batched message was queued
        self._wake_due: float | None = None  # monotonic time a window wakeup is set for

    BATCH_WINDOW_S = 0.0  # keep batched messages this long to put more in one batch

    def send(self, target, message) -> None:
        """Send ``message``; a hosted target is reached in an Envelope through its shard."""
        if isinstance(target, LogicalAddress) and not getattr(self._myRef, "hosted", False):
            target, message = target.shard, Envelope(target.name, message)
        super().send(target, message)

    def send_batched(self, target, message) -> None:
        """Send ``message`` together with the others sent to ``target`` within this
        handler (or this actor's ``BATCH_WINDOW_S``), as one MessageBatch.  Only for
        targets that are Mantis actors: a plain ActorSystem asker does not understand a batch."""
        if not self._batches:
            self._batch_opened = time.monotonic()
        self._batches.setdefault(str(target), (target, []))[1].append(message)
        if self._depth == 0:
            self._flush_batches()

    def _flush_batches(self) -> None:
        batches, self._batches = self._batches, {}
        for target, messages in batches.values():
            self.send(target, messages[0] if len(messages) == 1 else MessageBatch(messages))

    def receiveMessage(self, message, sender):
        self._depth += 1
        try:
            return self._dispatch(message, sender)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._after_each()

    def _after_each(self) -> None:
        now = time.monotonic()
        self._depth += 1  # what is sent from here is batched too
        try:
            if self._tick_interval is not None and now - self._last_tick > max(3 * self._tick_interval, 1.0):
                # The tick's wakeup was dropped (Thespian under load): tick now and re-arm.
                self.start_ticking(self._tick_interval)
                self._tick(now)
            self.after_message()
        finally:
            self._depth -= 1
            if self._batches:
                waited = now - self._batch_opened
                if waited >= self.BATCH_WINDOW_S:
                    self._flush_batches()
                else:
                    self.wake_within(self.BATCH_WINDOW_S - waited)

    def wake_within(self, seconds: float) -> None:
        """Make sure a message arrives within ``seconds`` (a wakeup, unless one is already
        due sooner and not overdue), so that windowed work gets done when all is quiet."""
        now = time.monotonic()
        due = now + seconds
        if self._wake_due is not None and now - 1.0 < self._wake_due <= due + 0.001:
            return
        self._wake_due = due
        self.wakeupAfter(max(0.0, seconds), payload=_WINDOW)

    def after_message(self) -> None:
        """Called once after every message (a batch counts as one); subclasses override to
        do once what many messages asked for (a placement round)."""

    def _dispatch(self, message, sender):
        if isinstance(message, MessageBatch):
            for m in message.messages:
                try:
                    self._dispatch(m, sender)
                except Exception:  # noqa: BLE001  one bad message must not redo its batch-mates
                    log.exception("%s failed on %s from a batch", type(self).__name__, type(m).__name__)
            return None
        if isinstance(message, (ActorSystemMessage, Tick)):
            return super().receiveMessage(message, sender)
        if not isinstance(message, self.ACCEPTS.get(self.phase, ())):
            if isinstance(message, (Done, Rejected)):
                # Never answer an answer: two actors would bounce rejections forever.
                log.info("%s ignored an unexpected answer: %s", type(self).__name__, message)
                return None
            reason = (f"{type(self).__name__} in phase '{self.phase}' does not accept "
                      f"{type(message).__name__}")
            log.warning("rejected: %s", reason)
            target = getattr(message, "reply_to", None) or sender
            self.send(target, Rejected(409, reason))
            return None
        return super().receiveMessage(message, sender)

    def receiveUnrecognizedMessage(self, message, sender):
        if isinstance(message, ActorSystemMessage):
            return  # system notices we have no use for
        # Types listed in ACCEPTS always have a handler; anything reaching here is foreign.
        self.send(sender, Rejected(400, f"{type(self).__name__} does not understand "
                                        f"{type(message).__name__}"))

    def receiveMsg_ChildActorExited(self, message, sender):
        self.on_child_exited(message.childAddress)

    def on_child_exited(self, address) -> None:
        """A child actor's process ended (on request or by a crash); subclasses override."""

    def receiveMsg_ActorExitRequest(self, message, sender):
        self.exiting = True  # children exiting now are part of a shutdown, not crashes
        self.on_exit()

    def on_exit(self) -> None:
        """Called when this actor is asked to exit; subclasses release what they hold."""

    def receiveMsg_PoisonMessage(self, message, sender):
        log.error("%s: a message could not be handled by %s: %r", type(self).__name__, sender,
                  message.poisonMessage)

    def answer(self, request, sender, reply) -> None:
        """Send ``reply`` to whoever asked: the request's ``reply_to``, else the sender."""
        self.send(getattr(request, "reply_to", None) or sender, reply)

    def start_ticking(self, interval_s: float) -> None:
        """Wake this actor every ``interval_s`` with a Tick; a newer call supersedes older timers."""
        self._tick_generation += 1
        self._tick_interval = interval_s
        self._last_tick = time.monotonic()
        self.wakeupAfter(interval_s, payload=Tick(self._tick_generation))

    def stop_ticking(self) -> None:
        """No more ticks (stale timers are ignored)."""
        self._tick_generation += 1
        self._tick_interval = None

    def _tick(self, now: float) -> None:
        self._last_tick = now
        self.on_tick(time.time())

    def receiveMsg_WakeupMessage(self, message, sender):
        payload = message.payload
        if payload == _WINDOW:
            self._wake_due = None  # the window's work is done after this message
        elif isinstance(payload, Tick) and payload.generation == self._tick_generation:
            self.wakeupAfter(self._tick_interval, payload=payload)
            self._tick(time.monotonic())

    def on_tick(self, now: float) -> None:
        """Called on every tick; subclasses override."""
