"""One job cluster: its definition, enabled flag, job counter and active jobs.

Cluster states are Enabled and Disabled, and Deleted once it is gone.  A disabled
cluster keeps updates, reads and deletes, and rejects submits (its jobs are killed by
its actor).  A cluster is deleted only when it has no active job.  Methods raise
``TransitionRejected`` with the reason when a rule says no.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mantis.lifecycles import cluster_sla
from mantis.lifecycles.tables import (
    Meta,
    Story,
    StoryEntry,
    Transition,
    TransitionRejected,
    TransitionTable,
    check,
    new_stimulus_id,
    run_transition,
    states_with,
)
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from mantis.model.ids import job_id


class ClusterState(StrEnum):
    """A job cluster's state (the strings stored records and the API carry)."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"
    DELETED = "Deleted"


# The meta-states of each state, declared once (as Mantis' META_STATES).
META_STATES: dict[ClusterState, frozenset[Meta]] = {
    ClusterState.ENABLED: frozenset({Meta.ACTIVE}),
    ClusterState.DISABLED: frozenset({Meta.ACTIVE}),
    ClusterState.DELETED: frozenset({Meta.TERMINAL}),
}

ENABLED = ClusterState.ENABLED
DISABLED = ClusterState.DISABLED
DELETED = ClusterState.DELETED
TERMINAL_CLUSTER_STATES = states_with(META_STATES, Meta.TERMINAL)
MAX_JARS = 20  # artifact versions kept per cluster


# -- handlers ----------------------------------------------------------------------

def _submitted(cluster: JobCluster, now: float, sid: str, new_id: str) -> list:
    cluster.next_job_number += 1
    cluster.active_jobs.append(new_id)
    cluster.updated_at = now
    return []


def _updated(cluster: JobCluster, now: float, sid: str, definition: JobClusterDefinition) -> list:
    cluster.definition = definition
    cluster.updated_at = now
    cluster.record_jar(now)
    return []


CLUSTER_TABLE = TransitionTable(
    "job cluster",
    {
        ENABLED: {"disable": Transition(DISABLED), "update": Transition(ENABLED, _updated),
                  "submit": Transition(ENABLED, _submitted), "delete": Transition(DELETED)},
        DISABLED: {"enable": Transition(ENABLED), "update": Transition(DISABLED, _updated),
                   "delete": Transition(DELETED)},
        DELETED: {},
    },
    reasons={
        (ENABLED, "enable"): "it is already enabled",
        (DISABLED, "disable"): "it is already disabled",
        (DISABLED, "submit"): "a disabled cluster takes no new jobs",
        **{(DELETED, e): "the cluster is deleted" for e in ("enable", "disable", "update", "submit", "delete")},
    },
)


@dataclass
class JobCluster:
    """A registered job cluster and the jobs of it that are still active."""

    definition: JobClusterDefinition
    state: ClusterState = ENABLED
    next_job_number: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    active_jobs: list[str] = field(default_factory=list)
    completed_jobs: list[str] = field(default_factory=list)
    # The artifacts the cluster has had, oldest first (Mantis' "jars"): each version's
    # url, when it was uploaded and its scheduling info.
    jars: list[dict] = field(default_factory=list)
    # What happened to the cluster, in memory only (not in the record).
    log: Story = field(default_factory=Story, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    def handle(self, event: str, now: float | None = None, *, stimulus_id: str | None = None,
               **details: Any) -> list:
        """Apply ``event`` through CLUSTER_TABLE or raise TransitionRejected."""
        return run_transition(CLUSTER_TABLE, self, event, time.time() if now is None else now,
                              key=self.name, story=self.log,
                              stimulus_id=stimulus_id or new_stimulus_id(event), **details)

    def apply(self, event: str) -> None:
        """Move along the cluster table (an event with nothing but a state change)."""
        self.handle(event)

    def record_jar(self, now: float) -> None:
        """Remember the definition's artifact version (a version given again replaces
        its entry, and moves it last: the latest)."""
        d = self.definition
        jar = {"url": d.url, "version": d.version, "uploadedAt": now, "schedulingInfo": d.scheduling_info.to_json()}
        last = self.jars[-1] if self.jars else None
        if last is not None and all(last[k] == jar[k] for k in ("url", "version", "schedulingInfo")):
            return  # an update that left the artifact as it was (labels, SLA, ...)
        self.jars = [*(j for j in self.jars if j["version"] != d.version), jar][-MAX_JARS:]

    def story(self) -> list[StoryEntry]:
        """What happened to this cluster, oldest first."""
        return self.log.story(self.name)

    def validate(self) -> None:
        """Check the cluster's invariants; raise InvariantViolation if one is broken."""
        check(isinstance(self.state, ClusterState), f"job cluster {self.name}: state {self.state!r}")
        check(len(set(self.active_jobs)) == len(self.active_jobs),
              f"job cluster {self.name}: a job listed twice as active")
        check(self.state not in TERMINAL_CLUSTER_STATES or not self.active_jobs,
              f"job cluster {self.name}: deleted with active jobs")
        check(self.next_job_number >= 1, f"job cluster {self.name}: next job number {self.next_job_number}")

    def preview_submit(self, submission: JobDefinition) -> JobDefinition:
        """The complete definition ``submission`` would run with, or TransitionRejected
        with the reason the cluster refuses it now.  Changes nothing."""
        CLUSTER_TABLE.next_state(self.state, "submit", self.name)
        if submission.name is not None and submission.name != self.name:
            raise TransitionRejected(
                f"job cluster {self.name}: submission names another cluster {submission.name!r}")
        refused = cluster_sla.refusal(cluster_sla.ClusterSla.of(self.definition), len(self.active_jobs))
        if refused:
            raise TransitionRejected(f"job cluster {self.name}: {refused}")
        return submission.merged_with(self.definition)

    def submit(self, submission: JobDefinition, now: float) -> tuple[str, JobDefinition]:
        """Allocate the next job id and the complete definition of a submitted job."""
        definition = self.preview_submit(submission)
        new_id = job_id(self.name, self.next_job_number)
        self.handle("submit", now, new_id=new_id)
        return new_id, definition

    def job_ended(self, ended_id: str, keep: int = 100) -> None:
        """Move a job from active to the recent completed list (most recent ``keep``)."""
        if ended_id in self.active_jobs:
            self.active_jobs.remove(ended_id)
        self.completed_jobs.append(ended_id)
        del self.completed_jobs[:-keep]

    def delete(self) -> None:
        """Mark deleted; rejected while any job is active."""
        if self.active_jobs:
            raise TransitionRejected(
                f"job cluster {self.name}: has {len(self.active_jobs)} active job(s) "
                f"({', '.join(self.active_jobs[:5])}); kill them first")
        self.apply("delete")

    def update(self, definition: JobClusterDefinition, now: float) -> None:
        """Replace the definition (name must not change)."""
        if definition.name != self.name:
            raise TransitionRejected(f"job cluster {self.name}: cannot rename to {definition.name}")
        self.handle("update", now, definition=definition)

    def to_json(self) -> dict[str, Any]:
        return {"definition": self.definition.to_json(), "state": str(self.state),
                "nextJobNumber": self.next_job_number, "createdAt": self.created_at,
                "updatedAt": self.updated_at, "activeJobs": list(self.active_jobs),
                "completedJobs": list(self.completed_jobs), "jars": list(self.jars)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobCluster:
        return cls(definition=JobClusterDefinition.from_json(data["definition"]), state=ClusterState(data["state"]),
                   next_job_number=data["nextJobNumber"], created_at=data.get("createdAt", 0.0),
                   updated_at=data.get("updatedAt", 0.0), active_jobs=list(data.get("activeJobs", [])),
                   completed_jobs=list(data.get("completedJobs", [])), jars=list(data.get("jars", [])))

    def describe(self) -> dict[str, Any]:
        """The cluster as the API shows it: the definition plus its live facts."""
        out = self.definition.to_json()
        out.update({"state": str(self.state), "disabled": self.state == DISABLED,
                    "createdAt": self.created_at, "updatedAt": self.updated_at,
                    "activeJobs": list(self.active_jobs), "latestJobNumber": self.next_job_number - 1,
                    "jars": list(self.jars) or [{"url": self.definition.url, "version": self.definition.version,
                                                 "uploadedAt": self.created_at,
                                                 "schedulingInfo": self.definition.scheduling_info.to_json()}]})
        return out
