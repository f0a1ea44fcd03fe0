"""Transition tables: a lifecycle as data (state x event -> new state).

Each lifecycle in Mantis (cluster, job, worker) is one ``TransitionTable``.  An event
the table does not allow raises ``TransitionRejected`` with the reason; it is never
applied.  Effects are decided by the objects that own the entity (``job_state``),
never by the table.
"""
from __future__ import annotations

from dataclasses import dataclass


class TransitionRejected(Exception):
    """An event that is not allowed in the entity's current state; ``str()`` says why."""


@dataclass(frozen=True)
class TransitionTable:
    """Allowed transitions of one kind of entity.

    ``transitions`` maps state -> {event: new state}.  ``terminal`` states allow no event.
    """

    kind: str
    transitions: dict[str, dict[str, str]]

    @property
    def states(self) -> list[str]:
        """Every state named in the table, sources and targets."""
        seen: dict[str, None] = {}
        for state, events in self.transitions.items():
            seen[state] = None
            for target in events.values():
                seen[target] = None
        return list(seen)

    def is_terminal(self, state: str) -> bool:
        """True when no event is allowed in ``state``."""
        return not self.transitions.get(state)

    def allows(self, state: str, event: str) -> bool:
        """True when ``event`` may happen in ``state``."""
        return event in self.transitions.get(state, {})

    def next_state(self, state: str, event: str, entity: str = "") -> str:
        """The state after ``event``, or TransitionRejected naming entity, state and event."""
        try:
            return self.transitions[state][event]
        except KeyError:
            allowed = ", ".join(sorted(self.transitions.get(state, {}))) or "none (terminal)"
            who = f"{self.kind} {entity}".strip()
            raise TransitionRejected(
                f"{who}: event '{event}' is not allowed in state {state} (allowed: {allowed})"
            ) from None
