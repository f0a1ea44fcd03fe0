"""Health and readiness checks of one worker, as small machines on an injected clock.

One ``CheckTracker`` follows one check (``mantis.model.checks.CheckDefinition``) of one
worker; ``WorkerChecks`` holds a worker's trackers and says what the owner must do.
Nothing here probes, sleeps or sends: the shell (``actors.health_checker``) asks which
checks are ``due(now)``, runs the probes, and feeds each result back with ``record``.

Marathon's rules, as its health-check docs state them:

- a check runs every ``interval_s``; a probe still running after ``timeout_s`` fails;
- failures do not count while the worker is in its grace period (``grace_period_s``
  since it started) and has never been healthy; after that, or once it has been
  healthy, ``max_consecutive_failures`` failures in a row (0 = never) make it unhealthy,
  and the owner replaces it;
- a readiness check passes once: the worker is ready when all its readiness checks
  have passed, and is only then counted as Started.

Health states: ``grace`` -> ``healthy`` | ``failing`` -> ``unhealthy`` (terminal).
Readiness states: ``not_ready`` -> ``ready`` (terminal: no more probes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mantis.lifecycles.tables import Story, Transition, TransitionTable, new_stimulus_id, run_transition
from mantis.model.checks import CheckDefinition

GRACE, HEALTHY, FAILING, UNHEALTHY = "grace", "healthy", "failing", "unhealthy"
NOT_READY, READY = "not_ready", "ready"


@dataclass(frozen=True)
class Unhealthy:
    """Effect: the worker failed a health check too often; replace it with this reason."""

    worker_key: str
    reason: str


@dataclass(frozen=True)
class Ready:
    """Effect: every readiness check of the worker has passed; it counts as Started now."""

    worker_key: str


def _passed(t: CheckTracker, now: float, sid: str, message: str = "") -> list:
    t.consecutive_failures = 0
    t.ever_passed = True
    t.last_message = message
    return []


def _failed(t: CheckTracker, now: float, sid: str, message: str = "") -> list:
    t.consecutive_failures += 1
    t.last_message = message
    return []


def _ignored(t: CheckTracker, now: float, sid: str, message: str = "") -> list:
    t.last_message = f"{message} (ignored: grace period)"
    return []


HEALTH_TABLE = TransitionTable(
    "health check",
    {
        GRACE: {"pass": Transition(HEALTHY, _passed), "fail_in_grace": Transition(GRACE, _ignored),
                "fail": Transition(FAILING, _failed), "give_up": Transition(UNHEALTHY, _failed)},
        HEALTHY: {"pass": Transition(HEALTHY, _passed), "fail": Transition(FAILING, _failed),
                  "give_up": Transition(UNHEALTHY, _failed)},
        FAILING: {"pass": Transition(HEALTHY, _passed), "fail": Transition(FAILING, _failed),
                  "give_up": Transition(UNHEALTHY, _failed)},
        UNHEALTHY: {},
    },
    reasons={(HEALTHY, "fail_in_grace"): "the grace period ends once the worker has been healthy",
             (FAILING, "fail_in_grace"): "the grace period ends once the worker has been healthy"},
)

READINESS_TABLE = TransitionTable(
    "readiness check",
    {
        NOT_READY: {"pass": Transition(READY, _passed), "fail": Transition(NOT_READY, _failed)},
        READY: {},
    },
)


@dataclass
class CheckTracker:
    """One check of one worker: its state, when it is next due, its failures in a row.

    ``started_at`` is when the worker started (the grace period runs from there);
    ``in_flight_since`` is set while a probe runs (one probe at a time per check).
    """

    worker_key: str
    check: CheckDefinition
    readiness: bool
    started_at: float
    state: str = ""
    next_due: float = 0.0
    consecutive_failures: int = 0
    ever_passed: bool = False
    in_flight_since: float | None = None
    last_message: str = ""

    def __post_init__(self) -> None:
        self.state = self.state or (NOT_READY if self.readiness else GRACE)
        self.next_due = self.next_due or self.started_at

    @property
    def table(self) -> TransitionTable:
        return READINESS_TABLE if self.readiness else HEALTH_TABLE

    @property
    def done(self) -> bool:
        """True when this check will never run again (ready, or unhealthy)."""
        return self.table.is_terminal(self.state)

    @property
    def key(self) -> str:
        kind = "readiness" if self.readiness else "health"
        return f"{self.worker_key}/{kind}/{self.check.describe()}"

    def due(self, now: float) -> bool:
        """True when a probe should start now (none running, interval elapsed)."""
        return not self.done and self.in_flight_since is None and now >= self.next_due

    def begin(self, now: float) -> None:
        """A probe starts now; the next is due one interval after this one started."""
        self.in_flight_since = now
        self.next_due = now + self.check.interval_s

    def overdue(self, now: float) -> bool:
        """True when the running probe has outlived its timeout (its result, if it ever
        comes, is too late: the shell records a failure instead)."""
        return self.in_flight_since is not None and now - self.in_flight_since > self.check.timeout_s

    def event_for(self, ok: bool, now: float) -> str:
        """The table event a probe result is, given the grace period and the failure count."""
        if ok:
            return "pass"
        if self.readiness:
            return "fail"
        in_grace = self.state == GRACE and now - self.started_at < self.check.grace_period_s
        if in_grace:
            return "fail_in_grace"
        limit = self.check.max_consecutive_failures
        return "give_up" if limit and self.consecutive_failures + 1 >= limit else "fail"

    def record(self, ok: bool, message: str, now: float, story: Story | None = None) -> list:
        """Apply one probe's result; returns no effects (WorkerChecks decides them)."""
        self.in_flight_since = None
        return run_transition(self.table, self, self.event_for(ok, now), now, key=self.key, story=story,
                              stimulus_id=new_stimulus_id("probe"), message=message)

    def validate(self) -> None:
        """No invariants beyond the table's own (called when VALIDATE is on)."""


@dataclass
class WorkerChecks:
    """Every health and readiness check of one worker, and what their results mean."""

    worker_key: str
    health: list[CheckTracker] = field(default_factory=list)
    readiness: list[CheckTracker] = field(default_factory=list)
    story: Story = field(default_factory=lambda: Story(per_key=20, max_keys=16))
    told_ready: bool = False
    told_unhealthy: bool = False

    @classmethod
    def start(cls, worker_key: str, health: list[CheckDefinition], readiness: list[CheckDefinition],
              now: float) -> WorkerChecks:
        """Trackers for a worker that started at ``now``; every check is due at once.
        With no readiness check the worker is ready from the start (``ready``), and
        ``record`` never says Ready for it: the owner tells that at once."""
        return cls(worker_key,
                   [CheckTracker(worker_key, c, False, now) for c in health],
                   [CheckTracker(worker_key, c, True, now) for c in readiness],
                   told_ready=not readiness)

    @property
    def trackers(self) -> list[CheckTracker]:
        return self.health + self.readiness

    @property
    def ready(self) -> bool:
        """True when every readiness check has passed (at once if there are none)."""
        return all(t.state == READY for t in self.readiness)

    def due(self, now: float) -> list[CheckTracker]:
        """The checks whose probe should start now (after the worker was found unhealthy, none)."""
        if self.told_unhealthy:
            return []
        return [t for t in self.trackers if t.due(now)]

    def overdue(self, now: float) -> list[CheckTracker]:
        """The checks whose running probe has outlived its timeout."""
        return [t for t in self.trackers if t.overdue(now)]

    def record(self, tracker: CheckTracker, ok: bool, message: str, now: float) -> list[Any]:
        """Apply a probe result of ``tracker``; returns Ready or Unhealthy when the worker
        just became ready or unhealthy (each is told once)."""
        if self.told_unhealthy or tracker.done:
            return []
        tracker.record(ok, message, now, self.story)
        effects: list[Any] = []
        if tracker.state == UNHEALTHY:
            self.told_unhealthy = True
            effects.append(Unhealthy(self.worker_key, f"health check {tracker.check.describe()} failed "
                                     f"{tracker.consecutive_failures} time(s) in a row: {message}"))
        elif self.ready and not self.told_ready:
            self.told_ready = True
            effects.append(Ready(self.worker_key))
        return effects

    def describe(self) -> list[dict]:
        """Each check's state, for the agent's view."""
        return [{"check": t.check.describe(), "kind": "readiness" if t.readiness else "health",
                 "state": t.state, "consecutiveFailures": t.consecutive_failures, "last": t.last_message}
                for t in self.trackers]
