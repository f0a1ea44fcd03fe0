"""One job cluster: its definition, enabled flag, job counter and active jobs.

Cluster states are Enabled and Disabled, and Deleted once it is gone.  A disabled
cluster keeps updates, reads and deletes, and rejects submits (its jobs are killed by
its actor).  A cluster is deleted only when it has no active job.  Methods raise
``TransitionRejected`` with the reason when a rule says no.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mantis.definitions import JobClusterDefinition, JobDefinition
from mantis.ids import job_id
from mantis.lifecycle import TransitionRejected, TransitionTable

ENABLED = "Enabled"
DISABLED = "Disabled"
DELETED = "Deleted"

CLUSTER_TABLE = TransitionTable(
    "job cluster",
    {
        ENABLED: {"disable": DISABLED, "update": ENABLED, "submit": ENABLED, "delete": DELETED},
        DISABLED: {"enable": ENABLED, "update": DISABLED, "delete": DELETED},
        DELETED: {},
    },
)


@dataclass
class JobCluster:
    """A registered job cluster and the jobs of it that are still active."""

    definition: JobClusterDefinition
    state: str = ENABLED
    next_job_number: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    active_jobs: list[str] = field(default_factory=list)
    completed_jobs: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    def apply(self, event: str) -> None:
        """Move along the cluster table or raise TransitionRejected."""
        self.state = CLUSTER_TABLE.next_state(self.state, event, self.name)

    def preview_submit(self, submission: JobDefinition) -> JobDefinition:
        """The complete definition ``submission`` would run with, or TransitionRejected
        with the reason the cluster refuses it now.  Changes nothing."""
        CLUSTER_TABLE.next_state(self.state, "submit", self.name)
        if submission.name is not None and submission.name != self.name:
            raise TransitionRejected(
                f"job cluster {self.name}: submission names another cluster {submission.name!r}")
        if self.definition.sla_max and len(self.active_jobs) >= self.definition.sla_max:
            raise TransitionRejected(
                f"job cluster {self.name}: already runs {len(self.active_jobs)} job(s), its slaMax")
        return submission.merged_with(self.definition)

    def submit(self, submission: JobDefinition, now: float) -> tuple[str, JobDefinition]:
        """Allocate the next job id and the complete definition of a submitted job."""
        definition = self.preview_submit(submission)
        self.apply("submit")
        new_id = job_id(self.name, self.next_job_number)
        self.next_job_number += 1
        self.active_jobs.append(new_id)
        self.updated_at = now
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
        self.apply("update")
        self.definition = definition
        self.updated_at = now

    def to_json(self) -> dict[str, Any]:
        return {"definition": self.definition.to_json(), "state": self.state,
                "nextJobNumber": self.next_job_number, "createdAt": self.created_at,
                "updatedAt": self.updated_at, "activeJobs": list(self.active_jobs),
                "completedJobs": list(self.completed_jobs)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobCluster":
        return cls(definition=JobClusterDefinition.from_json(data["definition"]), state=data["state"],
                   next_job_number=data["nextJobNumber"], created_at=data.get("createdAt", 0.0),
                   updated_at=data.get("updatedAt", 0.0), active_jobs=list(data.get("activeJobs", [])),
                   completed_jobs=list(data.get("completedJobs", [])))

    def describe(self) -> dict[str, Any]:
        """The cluster as the API shows it: the definition plus its live facts."""
        out = self.definition.to_json()
        out.update({"state": self.state, "disabled": self.state == DISABLED,
                    "createdAt": self.created_at, "updatedAt": self.updated_at,
                    "activeJobs": list(self.active_jobs), "latestJobNumber": self.next_job_number - 1})
        return out
