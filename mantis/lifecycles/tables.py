"""Lifecycles as tables of handlers, in the manner of dask's ``worker_state_machine``.

Each lifecycle in Mantis (cluster, job, worker) is one ``TransitionTable``: a map from
(state, event) to a ``Transition``, which names the new state and the handler that
does what the transition means (timestamps, follow-on changes) and returns the effects
for the owner to carry out.  As in dask, the new state is part of the table, not a
decision of the handler, so the whole lifecycle can be read (and tested) as data.

Each machine has one entry, ``handle``, that goes through ``run_transition`` below: it
stamps a stimulus id, applies the row or raises ``TransitionRejected`` with the
reason, and appends what happened to a bounded ``Story`` that ``story(key)`` reads
back.  When ``VALIDATE`` is on (the tests switch it on), the machine's ``validate()``
runs after every transition and raises ``InvariantViolation`` on a broken rule.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

# Off in production (the checks walk every worker of a job on every transition); the
# tests switch it on so that every transition they drive is checked.
VALIDATE = False


class TransitionRejected(Exception):
    """An event that is not allowed in the entity's current state; ``str()`` says why."""


class InvariantViolation(AssertionError):
    """A machine's state breaks one of its invariants (a bug, never a user error)."""


class Meta(StrEnum):
    """Meta-states, as Mantis' META_STATES: what a group of states has in common."""

    ACTIVE = "Active"          # counts as alive: the job or worker is wanted
    RUNNING = "Running"        # holds resources on an agent and must heartbeat
    TERMINATING = "Terminating"  # stopping, waiting for its workers to confirm
    TERMINAL = "Terminal"      # ended for good: no event is allowed


def states_with(meta_states: Mapping[Any, frozenset[Meta]], meta: Meta) -> frozenset:
    """The states that ``meta_states`` (state -> its meta-states) marks with ``meta``."""
    return frozenset(state for state, metas in meta_states.items() if meta in metas)


# -- stimulus ids and stories ----------------------------------------------------------

_stimulus_counter = itertools.count(1)


def new_stimulus_id(name: str) -> str:
    """A process-unique id for one stimulus (a message, a tick, an operator action).

    Every transition caused by the same stimulus carries its id, so a story shows which
    changes happened together and in which order the stimuli came.
    """
    return f"{name}-{next(_stimulus_counter)}"


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """One line of a story: what ``event`` did to ``key`` (or why it was rejected)."""

    stimulus_id: str
    key: str
    event: str
    before: str
    after: str | None  # None when the event was rejected
    at: float
    note: str = ""


@dataclass
class Story:
    """A bounded log of transitions, per key: the last ``per_key`` entries of at most
    ``max_keys`` keys (the least recently written key is forgotten first), so a
    long-lived job does not remember every worker it ever had."""

    per_key: int = 100
    max_keys: int = 1000
    _entries: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _written: Any = field(default_factory=itertools.count, repr=False)

    def record(self, entry: StoryEntry) -> None:
        """Append ``entry`` to its key's log."""
        log = self._entries.pop(entry.key, None)
        if log is None:
            log = []  # a list, not a deque: ten thousand jobs' stories in one process add up
        # The write number orders entries of several keys (clocks may go backwards).
        log.append((next(self._written), entry))
        if len(log) > self.per_key:
            del log[:-self.per_key]
        self._entries[entry.key] = log
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def story(self, *keys: str) -> list[StoryEntry]:
        """The entries of ``keys``, oldest first (merged in the order they were written)."""
        found = sorted(item for k in keys for item in self._entries.get(k, ()))
        return [entry for _, entry in found]


# -- tables ----------------------------------------------------------------------------

Handler = Callable[..., list]


@dataclass(frozen=True)
class Transition:
    """One row of a table: the state an event leads to, and its handler.

    The handler is called as ``handler(entity, now, stimulus_id, **details)`` after the
    state has
    changed and returns the effects (a list, often empty).  None means the state change
    is all there is to it.
    """

    target: str
    handler: Handler | None = None


@dataclass(frozen=True)
class TransitionTable:
    """The lifecycle of one kind of entity: state -> {event: Transition}.

    A state with no rows is terminal.  ``reasons`` explains, for some rejected
    (state, event) pairs, why they are not allowed (shown in TransitionRejected).
    """

    kind: str
    transitions: Mapping[str, Mapping[str, Transition | str]]
    reasons: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # Events too frequent to tell a story (a heartbeat every interval would push
    # everything else out of the bounded log); their rejections are still recorded.
    untold: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A row may be written as just its target state (a table with no handlers, like
        # the master role's); it is stored as a Transition so every table reads alike.
        rows = {state: {event: row if isinstance(row, Transition) else Transition(row)
                        for event, row in events.items()}
                for state, events in self.transitions.items()}
        object.__setattr__(self, "transitions", rows)

    @property
    def _rows(self) -> Mapping[str, Mapping[str, Transition]]:
        """``transitions`` as stored: __post_init__ made every row a Transition."""
        return cast(Mapping[str, Mapping[str, Transition]], self.transitions)

    @property
    def states(self) -> list[str]:
        """Every state named in the table, sources and targets."""
        seen: dict[str, None] = {}
        for state, events in self._rows.items():
            seen[state] = None
            for row in events.values():
                seen[row.target] = None
        return list(seen)

    @property
    def events(self) -> list[str]:
        """Every event some state allows."""
        seen: dict[str, None] = {}
        for events in self.transitions.values():
            seen.update(dict.fromkeys(events))
        return list(seen)

    def is_terminal(self, state: str) -> bool:
        """True when no event is allowed in ``state``."""
        return not self.transitions.get(state)

    def allows(self, state: str, event: str) -> bool:
        """True when ``event`` may happen in ``state``."""
        return event in self.transitions.get(state, {})

    def row(self, state: str, event: str, entity: str = "") -> Transition:
        """The row for ``event`` in ``state``, or TransitionRejected saying why not."""
        try:
            return self._rows[state][event]
        except KeyError:
            raise TransitionRejected(self.rejection(state, event, entity)) from None

    def next_state(self, state: str, event: str, entity: str = "") -> str:
        """The state after ``event``, or TransitionRejected naming entity, state and event."""
        return self.row(state, event, entity).target

    def rejection(self, state: str, event: str, entity: str = "") -> str:
        """Why ``event`` is not allowed in ``state`` (the text of TransitionRejected)."""
        allowed = ", ".join(sorted(self.transitions.get(state, {}))) or "none (terminal)"
        who = f"{self.kind} {entity}".strip()
        text = f"{who}: event '{event}' is not allowed in state {state} (allowed: {allowed})"
        reason = self.reasons.get((state, event))
        return f"{text}: {reason}" if reason else text


def run_transition(table: TransitionTable, entity: Any, event: str, now: float, *, key: str,
                   story: Story | None, stimulus_id: str, **details: Any) -> list:
    """Apply ``event`` to ``entity`` (anything with a ``state``) through ``table``.

    Sets the new state, calls the row's handler with ``details`` and returns its
    effects; records the transition, or the rejection and its reason, in ``story``;
    then, when VALIDATE is on, checks ``entity.validate()``.
    """
    before = entity.state
    try:
        row = table.row(before, event, key)
    except TransitionRejected as exc:
        if story is not None:
            story.record(StoryEntry(stimulus_id, key, event, str(before), None, now, f"rejected: {exc}"))
        raise
    entity.state = row.target
    # Recorded before the handler runs: a handler may cause further transitions (a
    # kill that finds nothing to wait for ends the job), which must come after it.
    if story is not None and event not in table.untold:
        story.record(StoryEntry(stimulus_id, key, event, str(before), str(row.target), now))
    effects = row.handler(entity, now, stimulus_id, **details) if row.handler is not None else []
    if VALIDATE:
        entity.validate()
    return effects


def check(condition: bool, message: str) -> None:
    """Raise InvariantViolation with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InvariantViolation(message)


def in_order(*times: float | None) -> bool:
    """True when the given (present) timestamps never go backwards."""
    present = [t for t in times if t is not None]
    return all(a <= b for a, b in itertools.pairwise(present))
