"""JobClusterActor: one job cluster, its job id counter and its jobs' actors.

A hosted actor (``cluster:<name>``) in the shard that owns the cluster.  It applies
cluster changes through ``mantis.lifecycles.cluster_state.JobCluster`` (the rules), writes the
cluster record (the shard makes the turn's writes durable before any answer leaves),
hosts one JobActor per active job (new or recovered from the store) and answers
requests about ended jobs from the archive.

A submitted job is checked before it gets an id: its entry point must load and its
parameters resolve.  That check imports user code, so it runs in the master's
EntryPointCheckerActor (a child process per check, with a timeout), and the submit
continues when its answer arrives; other requests are handled meanwhile.

The cluster's SLA (min and max jobs, cron; rules in ``mantis.lifecycles.cluster_sla``)
is enforced on a bookkeeping tick (``master.sla_tick_s``), when one of its jobs starts
and after one ends; the cron spec also wakes the actor at its next moment.  Jobs the
SLA submits go through the same checks as a user's, as user ``mantis-sla``
(``mantis-cron`` when the cron spec fired).
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import ujson
from thespian.actors import ActorExitRequest

from actors.base import MantisActor
from actors.job_actor import JobActor
from actors.messages import (
    CheckEntryPoint,
    ClusterChanged,
    ClusterSummary,
    DeleteCluster,
    DescribeActors,
    DisableCluster,
    Done,
    EnableCluster,
    EntryPointChecked,
    GetArchivedWorkers,
    GetCluster,
    GetJob,
    GetJobEvents,
    JobChanged,
    JobFinished,
    JobSubmitted,
    JobSummary,
    KillJob,
    LoadCluster,
    MigrateJob,
    Rejected,
    ReplaceCluster,
    ResubmitWorker,
    ScaleStage,
    StartJob,
    SubmitJob,
    UpdateArtifact,
    UpdateJobSla,
    UpdateLabels,
    UpdateMigrationStrategy,
    UpdateSchedulingInfo,
    UpdateSla,
    WatchCluster,
    WatchJob,
)
from actors.watchers import Watchers
from mantis.lifecycles import cluster_sla
from mantis.lifecycles.cluster_sla import ClusterSla, CronClock, CronSkipped, KillJobs, SubmitJobs
from mantis.lifecycles.cluster_state import TERMINAL_CLUSTER_STATES, JobCluster
from mantis.lifecycles.job_state import ACTIVE_JOB_STATES, JobRecord
from mantis.lifecycles.tables import TransitionRejected
from mantis.model.codec import ValidationError
from mantis.model.definitions import JobClusterDefinition, JobDefinition, is_entry_point
from mantis.model.ids import parse_job_id
from mantis.sdk.entry_point_policy import allowed_packages, refusal

log = logging.getLogger("mantis.cluster")

CLUSTER_CHANGES = (ReplaceCluster, UpdateArtifact, UpdateSchedulingInfo, UpdateMigrationStrategy, UpdateSla,
                   UpdateLabels, UpdateJobSla, EnableCluster,
                   DisableCluster)
ENDED_JOB_REQUESTS = (GetJob, GetJobEvents, GetArchivedWorkers, KillJob, ScaleStage, ResubmitWorker, WatchJob)


SLA_USER = "mantis-sla"    # submits for slaMin, kills for slaMax
CRON_USER = "mantis-cron"  # submits when the cron spec fires


@dataclass(frozen=True)
class CronWake:
    """The payload of the wakeup set for the cron spec's next moment (``at``, epoch s)."""

    at: float


def _check_key(definition) -> tuple:
    return definition.url, ujson.dumps(definition.parameter_values(), sort_keys=True)


class JobClusterActor(MantisActor):
    """One cluster: definition changes, submits, its jobs' actors."""

    ACCEPTS = {
        "new": (LoadCluster,),
        "running": (GetCluster, *CLUSTER_CHANGES, DeleteCluster, SubmitJob, EntryPointChecked, JobFinished,
                    *ENDED_JOB_REQUESTS, WatchCluster, JobSummary, DescribeActors, Done, Rejected),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs: dict[str, object] = {}  # active job id -> hosted JobActor address
        self.checking: dict[int, tuple[SubmitJob, tuple]] = {}  # check token -> (submit, check key)
        # Definitions whose entry point passed the check, until when (monotonic): the
        # checker's own cache, kept here so a burst of submits costs no round trips.
        self.passed: dict[tuple, float] = {}
        self._tokens = itertools.count(1)
        self.watchers = Watchers()
        self.job_states: dict[str, str] = {}  # active job id -> its state, as its actor reports it
        self.cron = CronClock()
        self.sla_killed: set[str] = set()  # jobs the SLA asked to kill, until they end
        self._cron_armed: float | None = None  # the cron moment a wakeup is set for

    def receiveMsg_LoadCluster(self, msg: LoadCluster, sender):
        self.context = msg.context
        self.store = msg.context.store
        self.cluster = JobCluster.from_json(msg.record)
        if msg.is_new:
            self._persist()
            log.info("job cluster %s created", self.cluster.name)
            self.send(msg.reply_to, Done(self.cluster.describe()))
        else:
            self._recover_jobs(msg.jobs)
        self.phase = "running"
        self._publish()
        self._enforce_sla()

    def _recover_jobs(self, records: list | None) -> None:
        for record in self.store.jobs(self.cluster.name) if records is None else records:
            self._start_job_actor(record)
        # A job counted active but with no stored record never finished being created.
        self.cluster.active_jobs = [j for j in self.cluster.active_jobs if j in self.jobs]
        log.info("job cluster %s recovered with %d active job(s)", self.cluster.name, len(self.jobs))

    def _start_job_actor(self, record: dict) -> None:
        job_id = record["jobId"]
        address = self.createActor(JobActor, globalName=f"job:{job_id}")
        self.jobs[job_id] = address
        self.send(address, StartJob(job_id, self.cluster.name, record, self.context))

    def _persist(self) -> None:
        self.store.put_cluster(self.cluster.name, self.cluster.to_json())

    def _change(self, msg, sender, change) -> tuple[bool, Any]:
        """Run ``change`` on the cluster and return (True, its result); if a rule or a
        validation refuses it, put the cluster back as it was, answer the asker with the
        reason (400 or 409) and return (False, None)."""
        before = self.cluster.to_json()
        try:
            return True, change()
        except (ValidationError, TransitionRejected) as exc:
            self.cluster = JobCluster.from_json(before)
            status = 400 if isinstance(exc, ValidationError) else 409
            self.answer(msg, sender, Rejected(status, str(exc)))
            return False, (None, None)

    def _publish(self) -> None:
        self.send(self.context.manager, ClusterSummary(self.cluster.name, self.cluster.describe()))
        self._tell_watchers()

    def _tell_watchers(self) -> None:
        if len(self.watchers):  # the latest job is worth finding only for someone watching
            latest = self.latest_active_job()
            self.watchers.notify(latest, lambda w: self.send(w, ClusterChanged(self.cluster.name, latest)))

    def latest_active_job(self) -> str | None:
        """The newest job of this cluster that is still Accepted or Launched."""
        active = [job_id for job_id, actor in self.jobs.items()
                  if self.job_states.get(job_id, "Accepted") in ACTIVE_JOB_STATES]
        return max(active, key=lambda j: parse_job_id(j)[1]) if active else None

    def receiveMsg_JobSummary(self, msg: JobSummary, sender):
        before = self.job_states.get(msg.job_id)
        self.job_states[msg.job_id] = msg.summary["state"]
        self._tell_watchers()
        if msg.summary["state"] != before and msg.summary["state"] == cluster_sla.LAUNCHED:
            self._enforce_sla()  # a job started: max may now ask for an older one to go

    def receiveMsg_WatchCluster(self, msg: WatchCluster, sender):
        self.answer(msg, sender, ClusterChanged(self.cluster.name, self.latest_active_job()))
        self.watchers.renew(msg.reply_to or sender, msg.lease_s)

    # -- cluster requests --------------------------------------------------------------

    def receiveMsg_GetCluster(self, msg: GetCluster, sender):
        self.answer(msg, sender, Done(self.cluster.describe()))

    def _apply_change(self, msg, sender, change) -> None:
        def change_and_persist() -> None:
            change()
            self._persist()

        ok, _ = self._change(msg, sender, change_and_persist)
        if not ok:
            return
        log.info("job cluster %s: %s by %s", self.cluster.name, type(msg).__name__, msg.user)
        self._publish()
        self.answer(msg, sender, Done(self.cluster.describe()))
        self._enforce_sla()

    def _redefine(self, **fields) -> None:
        definition = JobClusterDefinition.from_json({**self.cluster.definition.to_json(), **fields})
        self._check_allowed(definition.url)
        self.cluster.update(definition, time.time())

    def _check_allowed(self, url: str) -> None:
        """Refuse (400) an entry point outside the allowed packages as soon as it is named,
        not only when a job is submitted (the checker refuses it there too)."""
        why = refusal(url, allowed_packages(self.context.config.access.allowed_packages))
        if why is not None:
            raise ValidationError(why)

    def _replace(self, definition: JobClusterDefinition) -> None:
        self._check_allowed(definition.url)
        self.cluster.update(definition, time.time())

    def receiveMsg_ReplaceCluster(self, msg: ReplaceCluster, sender):
        def replace() -> None:
            before = (self.cluster.definition.url, self.cluster.definition.version)
            self._replace(msg.definition)
            if (msg.definition.url, msg.definition.version) != before:  # a new job version
                self._migrate_jobs(msg.definition.url, msg.definition.version, msg.user)
        self._apply_change(msg, sender, replace)

    def receiveMsg_UpdateArtifact(self, msg: UpdateArtifact, sender):
        def update() -> None:
            self._redefine(url=msg.url, version=msg.version)
            if not msg.skip_submit:
                self._migrate_jobs(msg.url, msg.version, msg.user)
        self._apply_change(msg, sender, update)

    def _migrate_jobs(self, url: str, version: str, user: str) -> None:
        """Move the running jobs to the new artifact, as the cluster's migrationConfig says
        (sent with the turn, so only once the new definition is durable)."""
        for job_id, address in self.jobs.items():
            if self.job_states.get(job_id, "Accepted") in ACTIVE_JOB_STATES:
                self.send(address, MigrateJob(job_id, url, version,
                                              dict(self.cluster.definition.migration_config), user))

    def receiveMsg_UpdateSchedulingInfo(self, msg: UpdateSchedulingInfo, sender):
        fields = {"schedulingInfo": msg.scheduling_info.to_json()}
        if msg.version:
            fields["version"] = msg.version
        self._apply_change(msg, sender, lambda: self._redefine(**fields))

    def receiveMsg_UpdateMigrationStrategy(self, msg: UpdateMigrationStrategy, sender):
        self._apply_change(msg, sender, lambda: self._redefine(migrationConfig=msg.migration_config))

    def receiveMsg_UpdateSla(self, msg: UpdateSla, sender):
        self._apply_change(msg, sender, lambda: self._redefine(slaMin=msg.sla_min, slaMax=msg.sla_max,
                                                       cronSpec=msg.cron_spec, cronPolicy=msg.cron_policy))

    def receiveMsg_UpdateLabels(self, msg: UpdateLabels, sender):
        self._apply_change(msg, sender, lambda: self._redefine(labels=[x.to_json() for x in msg.labels]))

    def receiveMsg_UpdateJobSla(self, msg: UpdateJobSla, sender):
        self._apply_change(msg, sender, lambda: self._redefine(jobSla=msg.job_sla.to_json()))

    def receiveMsg_EnableCluster(self, msg: EnableCluster, sender):
        self._apply_change(msg, sender, lambda: self.cluster.apply("enable"))

    def receiveMsg_DisableCluster(self, msg: DisableCluster, sender):
        def disable():
            self.cluster.apply("disable")
            for job_id, address in self.jobs.items():  # a disabled cluster runs no job
                self.send(address, KillJob(job_id, "Killed", "cluster disabled", msg.user, reply_to=self.myAddress))
        self._apply_change(msg, sender, disable)

    def receiveMsg_DeleteCluster(self, msg: DeleteCluster, sender):
        try:
            self.cluster.delete()
        except TransitionRejected as exc:
            self.answer(msg, sender, Rejected(409, str(exc)))
            return
        self.store.delete_cluster(self.cluster.name)
        log.info("job cluster %s deleted by %s", self.cluster.name, msg.user)
        self.answer(msg, sender, Done({"deleted": self.cluster.name}))
        self.send(self.context.manager, ClusterSummary(self.cluster.name, None))
        self.watchers.notify(("deleted",), lambda w: self.send(w, ClusterChanged(self.cluster.name, None, True)))
        self.send(self.myAddress, ActorExitRequest())

    # -- submits ------------------------------------------------------------------------

    def receiveMsg_SubmitJob(self, msg: SubmitJob, sender):
        if msg.reply_to is None:
            msg.reply_to = sender
        try:
            definition = self.cluster.preview_submit(msg.definition)
        except (ValidationError, TransitionRejected) as exc:
            self.answer(msg, sender, Rejected(400 if isinstance(exc, ValidationError) else 409, str(exc)))
            return
        if self.context.checker is None:
            self.answer(msg, sender, Rejected(503, "no entry point checker is running"))
            return
        if definition.url is None:
            self.answer(msg, sender, Rejected(400, f"job cluster {self.cluster.name} names no entry point (url)"))
            return
        if not is_entry_point(definition.url):
            self.answer(msg, sender, Rejected(400, f"job artifact {definition.url!r} cannot run here: name the job "
                                                   "as a Python entry point 'package.module:attribute' "
                                                   "(updateArtifact or the submission's url)"))
            return
        key = _check_key(definition)
        if self.passed.get(key, 0.0) > time.monotonic():
            self._accept(msg, sender)  # checked moments ago: no round trip to the checker
            return
        token = next(self._tokens)
        self.checking[token] = (msg, key)
        self.send(self.context.checker, CheckEntryPoint(definition.url, definition.parameter_values(),
                                                        (self.myAddress.name, token)))

    def receiveMsg_EntryPointChecked(self, msg: EntryPointChecked, sender):
        waiting = self.checking.pop(msg.token[1], None)
        if waiting is None:
            return
        submit, key = waiting
        if msg.error is not None:
            self.answer(submit, sender, Rejected(400, msg.error))
            return
        cache_s = float(self.context.config.master.entry_point_cache_s)
        self.passed[key] = time.monotonic() + cache_s
        self._accept(submit, sender)

    def _accept(self, submit: SubmitJob, sender) -> None:
        """Give a checked submission its id and its record; the answer leaves with the turn's write."""
        now = time.time()

        def accept() -> tuple[JobRecord, dict]:
            job_id, definition = self.cluster.submit(submit.definition, now)
            job, _ = JobRecord.submit(job_id, self.cluster.name, definition, now)
            # Written in this turn with the cluster's new counter: the answer leaves the
            # shard only once both are durable.
            record = job.to_json()
            self.store.put_job(self.cluster.name, job_id, record)
            self._persist()
            return job, record

        ok, (job, record) = self._change(submit, sender, accept)
        if not ok:
            return
        log.info("job %s submitted by %s", job.job_id, job.definition.user)
        self.answer(submit, sender, JobSubmitted(job.job_id))
        self._start_job_actor(record)
        self._publish()

    # -- SLA ----------------------------------------------------------------------------

    def _active_job_states(self) -> dict[str, str]:
        """Active job id -> state, leaving out jobs terminating or being killed by the SLA."""
        return {job_id: self.job_states.get(job_id, "Accepted") for job_id in self.jobs
                if self.job_states.get(job_id, "Accepted") in ACTIVE_JOB_STATES and job_id not in self.sla_killed}

    def _pending_sla_submits(self) -> int:
        return sum(1 for submit, _ in self.checking.values() if submit.reply_to is self.myAddress)

    def _enforce_sla(self) -> None:
        """Apply the cluster's SLA now and carry out what it asks (submits, kills)."""
        if self.phase != "running" or self.cluster.state in TERMINAL_CLUSTER_STATES:
            return
        now = time.time()
        sla = ClusterSla.of(self.cluster.definition)
        jobs, pending = self._active_job_states(), self._pending_sla_submits()
        enabled = self.cluster.enabled
        for instruction in (self.cron.due(sla, enabled, jobs, now, pending)
                            + cluster_sla.enforce(sla, enabled, jobs, pending)):
            if isinstance(instruction, SubmitJobs):
                log.info("job cluster %s: SLA submits %d job(s): %s", self.cluster.name, instruction.count,
                         instruction.reason)
                user = CRON_USER if instruction.by_cron else SLA_USER
                for _ in range(instruction.count):
                    self.receiveMsg_SubmitJob(SubmitJob(self.cluster.name, JobDefinition(user=user),
                                                        reply_to=self.myAddress), self.myAddress)
            elif isinstance(instruction, KillJobs):
                for job_id in instruction.job_ids:
                    log.info("job cluster %s: SLA kills job %s: %s", self.cluster.name, job_id, instruction.reason)
                    self.sla_killed.add(job_id)
                    self.send(self.jobs[job_id], KillJob(job_id, "SLA", instruction.reason, SLA_USER,
                                                         reply_to=self.myAddress))
            elif isinstance(instruction, CronSkipped):
                log.info("job cluster %s: %s", self.cluster.name, instruction.reason)
        self._keep_sla_timers(sla, now)

    def _keep_sla_timers(self, sla: ClusterSla, now: float) -> None:
        """Tick while the cluster has an SLA to keep; wake for the cron's next moment."""
        wants_tick = bool(sla.min or sla.max or sla.cron) and self.cluster.enabled
        if wants_tick and self._tick_interval is None:
            self.start_ticking(float(self.context.config.master.sla_tick_s))
        elif not wants_tick and self._tick_interval is not None:
            self.stop_ticking()
        due = self.cron.next_fire
        if due is not None and due != self._cron_armed:
            self._cron_armed = due
            self.wakeupAfter(max(0.0, due - now), payload=CronWake(due))

    def on_tick(self, now: float) -> None:
        self._enforce_sla()

    def receiveMsg_WakeupMessage(self, message, sender):
        if isinstance(message.payload, CronWake):
            if message.payload.at == self._cron_armed:
                self._cron_armed = None  # woken (perhaps a little early): arm again if not yet due
                self._enforce_sla()
            return
        super().receiveMsg_WakeupMessage(message, sender)

    # -- jobs ---------------------------------------------------------------------------

    def receiveMsg_JobFinished(self, msg: JobFinished, sender):
        address = self.jobs.pop(msg.job_id, None)
        self.job_states.pop(msg.job_id, None)
        if address is not None:
            self.send(address, ActorExitRequest())
        self.sla_killed.discard(msg.job_id)
        self.cluster.job_ended(msg.job_id)
        self._persist()
        log.info("job %s ended %s", msg.job_id, msg.state)
        self._publish()
        self._enforce_sla()  # a job ended: min may ask for another

    def _archived(self, msg, sender) -> JobRecord | None:
        record = self.store.archived_job(self.cluster.name, msg.job_id)
        if record is None:
            self.answer(msg, sender, Rejected(404, f"job {msg.job_id} does not exist"))
            return None
        return JobRecord.from_json(record)

    def receiveMsg_GetJob(self, msg: GetJob, sender):
        job = self._archived(msg, sender)
        if job is not None:
            self.answer(msg, sender, Done(job.describe()))

    def receiveMsg_GetArchivedWorkers(self, msg: GetArchivedWorkers, sender):
        job = self._archived(msg, sender)
        if job is not None:
            self.answer(msg, sender, Done([w.describe() for w in job.archived_workers]))

    def receiveMsg_GetJobEvents(self, msg: GetJobEvents, sender):
        job = self._archived(msg, sender)
        if job is not None:
            self.answer(msg, sender, Done(list(job.events)))

    def receiveMsg_WatchJob(self, msg: WatchJob, sender):
        job = self._archived(msg, sender)
        if job is not None:
            self.answer(msg, sender, JobChanged(job.job_id, job.describe(), final=True))

    def _ended(self, msg, sender) -> None:
        job = self._archived(msg, sender)
        if job is not None:
            self.answer(msg, sender, Rejected(409, f"job {msg.job_id} has ended ({job.state})"))

    receiveMsg_KillJob = _ended
    receiveMsg_ScaleStage = _ended
    receiveMsg_ResubmitWorker = _ended

    def receiveMsg_Done(self, msg, sender):
        pass  # answers to kills this actor sent on disable

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("job cluster %s: %s", self.cluster.name, msg.reason)

    def receiveMsg_DescribeActors(self, msg, sender):
        self.answer(msg, sender, Done({"name": self.cluster.name, "jobs": list(self.jobs)}))

    def describe_actor(self) -> dict:
        """This cluster's entry in the admin view."""
        return {"activeJobs": list(self.jobs), "checking": len(self.checking), "cronNextFire": self.cron.next_fire,
                "slaKilling": sorted(self.sla_killed)}
