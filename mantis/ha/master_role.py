"""A master's role among several masters, as a machine like the lifecycles'.

A master with no election configured leads from the start.  With an election, it
starts as a Standby (serving the API as redirects to the leader), becomes Leading when
elected (its actors load every cluster and job from the store), and goes back to
Standby the moment it loses ZooKeeper (its actors are shut down; workers on agents are
not touched).  Stopped is terminal.  ``MasterRole`` keeps the current role and a
history of terms, so the API and the logs can show when this master led.

As in ``mantis/lifecycles``: str-valued states with their meta-states declared once, a
table of (state, event) -> ``Transition`` whose handlers open and close the terms, one
``handle(event)`` that stamps a stimulus id and tells the ``story()``, and a
``validate()`` of the invariants (run after every transition in tests).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mantis.lifecycles.tables import (
    Meta,
    Story,
    StoryEntry,
    Transition,
    TransitionTable,
    check,
    in_order,
    new_stimulus_id,
    run_transition,
    states_with,
)


class Role(StrEnum):
    """The role of a master process."""

    STANDBY = "Standby"
    LEADING = "Leading"
    STOPPED = "Stopped"


STANDBY, LEADING, STOPPED = Role.STANDBY, Role.LEADING, Role.STOPPED

# The meta-states of each role, declared once.
META_STATES: dict[Role, frozenset[Meta]] = {
    STANDBY: frozenset({Meta.ACTIVE}),
    LEADING: frozenset({Meta.ACTIVE}),
    STOPPED: frozenset({Meta.TERMINAL}),
}
TERMINAL_ROLES = states_with(META_STATES, Meta.TERMINAL)

# The key of the role's story (a master has one role).
STORY_KEY = "master"


def _open_term(role: MasterRole, now: float, sid: str) -> list:
    role.terms.append([now, None])
    return []


def _close_term(role: MasterRole, now: float, sid: str) -> list:
    role.terms[-1][1] = now
    return []


ROLE_TABLE = TransitionTable(
    "master role",
    {
        STANDBY: {"elected": Transition(LEADING, _open_term), "stop": Transition(STOPPED)},
        LEADING: {"lost": Transition(STANDBY, _close_term), "stop": Transition(STOPPED, _close_term)},
        STOPPED: {},
    },
    reasons={
        (STANDBY, "lost"): "a standby has nothing to lose",
        (LEADING, "elected"): "already leading: no second term inside a term",
        **{(STOPPED, e): "the master has stopped" for e in ("elected", "lost", "stop")},
    },
)


@dataclass
class MasterRole:
    """The role of this master process; ``change(event)`` applies one event of the table.

    ``terms`` lists ``[started_at, ended_at or None]`` for every period spent leading.
    Safe to call from any thread.
    """

    state: Role = STANDBY
    terms: list[list] = field(default_factory=list)
    log: Story = field(default_factory=Story, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def handle(self, event: str, now: float | None = None, *, stimulus_id: str | None = None,
               **details: Any) -> list:
        """Apply ``event`` through ROLE_TABLE (or raise ``TransitionRejected``); returns its
        effects (none: the master service does what a role change means)."""
        now = time.time() if now is None else now
        with self._lock:
            return run_transition(ROLE_TABLE, self, event, now, key=STORY_KEY, story=self.log,
                                  stimulus_id=stimulus_id or new_stimulus_id(f"role-{event}"), **details)

    def change(self, event: str, now: float | None = None) -> Role:
        """Apply ``event``; returns the new role or raises ``TransitionRejected``."""
        self.handle(event, now)
        return self.state

    @property
    def leading(self) -> bool:
        """True while this master leads (its actors are up or coming up)."""
        return self.state == LEADING

    def story(self) -> list[StoryEntry]:
        """What happened to the role, oldest first."""
        return self.log.story(STORY_KEY)

    def validate(self) -> None:
        """Check the role's invariants; raise InvariantViolation if one is broken."""
        check(isinstance(self.state, Role), f"master role: state {self.state!r}")
        check(all(len(t) == 2 for t in self.terms), f"master role: malformed terms {self.terms}")
        check(all(t[1] is not None for t in self.terms[:-1]), "master role: an earlier term is still open")
        open_term = bool(self.terms) and self.terms[-1][1] is None
        check(open_term == (self.state == LEADING),
              f"master role: {self.state} with {'an open' if open_term else 'no open'} term")
        check(in_order(*(stamp for t in self.terms for stamp in t)), f"master role: terms out of order {self.terms}")

    def describe(self) -> dict:
        """The role and terms, for masterInfo."""
        with self._lock:
            return {"role": str(self.state), "terms": [list(t) for t in self.terms]}
