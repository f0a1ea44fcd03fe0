"""A job's own SLA: its subscription timeout and its runtime limit (Mantis' rules).

Pure logic on the caller's clock.  The JobActor calls ``JobSlaWatch.check`` on every
tick with the job's start time and how many subscribers its output has (the last
stage's workers count their output connections and report them with every heartbeat,
as the ``subscribers`` metric); a ``KillForSla`` it gets back is carried out as a kill
with that reason and message.

- **Subscription timeout**: a Transient job whose output has had no subscriber for
  ``subscriptionTimeoutSecs`` (counted from its start, or from when its last
  subscriber left) is killed with reason SLA.  0 means no timeout.
- **Runtime limit**: ``jobSla.runtimeLimitSecs`` (0: none) after its start, the job
  is killed with reason RuntimeLimit, Perpetual or Transient.
- **Minimum runtime**: ``jobSla.minRuntimeSecs`` after its start no SLA kill happens
  before it; a runtime limit below it is effectively raised to it.

A job's start is when it became Launched (every worker Started); before that no rule
applies.  The moment the last subscriber was seen is kept in memory only: after a master
restart the timeout counts again from the restart, so it can only kill later, never
sooner.  The runtime limit counts from the stored start, so it survives restarts.
"""
from __future__ import annotations

from dataclasses import dataclass

from mantis.model.definitions import JobDefinition, JobSla

TRANSIENT = "Transient"


@dataclass(frozen=True)
class KillForSla:
    """Kill the job with ``reason`` (a kill reason: SLA or RuntimeLimit) and ``message``."""

    reason: str
    message: str


@dataclass(frozen=True)
class JobSlaTerms:
    """The SLA terms of one job, in seconds (0: no such rule)."""

    transient: bool = False
    subscription_timeout_s: float = 0.0
    runtime_limit_s: float = 0.0
    min_runtime_s: float = 0.0

    @classmethod
    def of(cls, definition: JobDefinition) -> JobSlaTerms:
        """The terms of a job's (merged) definition."""
        sla = definition.job_sla or JobSla()
        return cls(transient=sla.duration_type == TRANSIENT,
                   subscription_timeout_s=float(definition.subscription_timeout_secs),
                   runtime_limit_s=float(sla.runtime_limit_secs),
                   min_runtime_s=float(sla.min_runtime_secs))

    @property
    def applies(self) -> bool:
        """Whether any rule can ever kill the job (else the watch need not run)."""
        return bool(self.runtime_limit_s or (self.transient and self.subscription_timeout_s))


@dataclass
class JobSlaWatch:
    """Watches one job's subscribers and age; ``check`` says when its SLA kills it.

    ``since`` is when the watching began (the JobActor's start, or its recovery after
    a master restart): time before it is not counted as time without subscribers.
    """

    terms: JobSlaTerms
    since: float
    last_subscribed_at: float | None = None  # the last check that saw a subscriber

    def check(self, now: float, started_at: float | None, subscribers: int) -> KillForSla | None:
        """The kill the SLA asks for at ``now``, or None.

        ``started_at`` is when the job became Launched (None: not yet); ``subscribers``
        is how many subscribers its output has now.
        """
        t = self.terms
        if subscribers > 0:
            self.last_subscribed_at = now
        if started_at is None:
            return None
        ran = now - started_at
        if ran < t.min_runtime_s:
            return None
        if t.runtime_limit_s and ran >= t.runtime_limit_s:
            return KillForSla("RuntimeLimit", f"ran {ran:.0f}s, its runtimeLimitSecs is {t.runtime_limit_s:.0f}")
        if t.transient and t.subscription_timeout_s and subscribers == 0:
            idle = now - max(started_at, self.since, self.last_subscribed_at or started_at)
            if idle >= t.subscription_timeout_s:
                return KillForSla("SLA", f"Transient job without a subscriber for {idle:.0f}s "
                                         f"(subscriptionTimeoutSecs {t.subscription_timeout_s:.0f})")
        return None
