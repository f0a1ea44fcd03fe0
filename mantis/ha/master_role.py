"""A master's role among several masters, as a transition table.

A master with no election configured leads from the start.  With an election, it
starts as a Standby (serving the API as redirects to the leader), becomes Leading when
elected (its actors load every cluster and job from the store), and goes back to
Standby the moment it loses ZooKeeper (its actors are shut down; workers on agents are
not touched).  Stopped is terminal.  ``MasterRole`` keeps the current role and a
history of terms, so the API and the logs can show when this master led.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mantis.lifecycles.tables import TransitionTable

STANDBY = "Standby"
LEADING = "Leading"
STOPPED = "Stopped"

ROLE_TABLE = TransitionTable(
    "master role",
    {
        STANDBY: {"elected": LEADING, "stop": STOPPED},
        LEADING: {"lost": STANDBY, "stop": STOPPED},
        STOPPED: {},
    },
)


@dataclass
class MasterRole:
    """The role of this master process; ``change(event)`` applies one event of the table.

    ``terms`` lists ``[started_at, ended_at or None]`` for every period spent leading.
    Safe to call from any thread.
    """

    state: str = STANDBY
    terms: list[list] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def change(self, event: str, now: float | None = None) -> str:
        """Apply ``event``; returns the new role or raises ``TransitionRejected``."""
        now = time.time() if now is None else now
        with self._lock:
            new = ROLE_TABLE.next_state(self.state, event)
            if new == LEADING:
                self.terms.append([now, None])
            elif self.state == LEADING:
                self.terms[-1][1] = now
            self.state = new
            return new

    @property
    def leading(self) -> bool:
        """True while this master leads (its actors are up or coming up)."""
        return self.state == LEADING

    def describe(self) -> dict:
        """The role and terms, for masterInfo."""
        with self._lock:
            return {"role": self.state, "terms": [list(t) for t in self.terms]}
