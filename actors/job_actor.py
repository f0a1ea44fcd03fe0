"""JobActor: a thin shell around one ``mantis.lifecycles.job_state.JobRecord``.

A hosted actor (``job:<jobId>``) in the shard of its cluster.  It turns messages into
calls on the JobRecord (the rules live there) and carries out the effects the JobRecord returns,
in order: persist first, then ask the scheduler, stop workers, and on the end archive
the job and tell the cluster.  Persisting queues the job's record in the shard's
store; the shard makes the turn's writes durable before anything this actor sent in
the turn (an answer, a launch request) leaves the shard, so nothing is acknowledged
or launched that a crash could forget.

Every tick it also asks the job's SLA (``mantis.lifecycles.job_sla``: subscription
timeout, runtime limit) whether the job must be killed, and kills it with that reason.
"""
from __future__ import annotations

import logging
import time

from actors.base import MantisActor
from actors.messages import (
    CancelWorker,
    DescribeActors,
    Done,
    GetArchivedWorkers,
    GetJob,
    GetJobEvents,
    JobChanged,
    JobFinished,
    JobKilled,
    JobSummary,
    KillJob,
    MigrateJob,
    RegisterJob,
    Rejected,
    ResubmitWorker,
    ScaleStage,
    ScheduleWorker,
    StageScaled,
    StartJob,
    UnregisterJob,
    UpdateUpstream,
    WatchJob,
    WorkerLaunched,
    WorkerResubmitted,
    WorkerSpec,
    WorkerStatusBatch,
)
from actors.watchers import Watchers
from mantis.config import Config
from mantis.lifecycles import job_state, migration
from mantis.lifecycles.job_sla import JobSlaTerms, JobSlaWatch
from mantis.lifecycles.job_state import JOB_MASTER_MACHINE, JOB_MASTER_STAGE, JobRecord, WorkerPolicy
from mantis.lifecycles.job_views import watched_view
from mantis.lifecycles.tables import TransitionRejected, new_stimulus_id
from mantis.model.codec import ValidationError
from mantis.model.definitions import StageSchedulingInfo
from mantis.model.migration_config import MigrationConfig

log = logging.getLogger("mantis.job")


def policy_from_config(config: Config) -> WorkerPolicy:
    """The worker policy named by a master config's ``workers`` section.

    Every value comes from the config, whose defaults (``mantis.config.WorkersConfig``)
    are the only ones: WorkerPolicy's own defaults are not consulted here.
    """
    return WorkerPolicy.from_config(config.workers)


def worker_spec(job: JobRecord, worker) -> WorkerSpec:
    """What the scheduler and the agent need to place and run ``worker``."""
    # A worker started before an artifact update keeps the artifact it was launched with.
    info, url = job.definition.scheduling_info, worker.url or job.definition.url
    # A submitted job's definition is merged with its cluster's, which has both.
    assert info is not None and url is not None, f"job {job.job_id} has no scheduling info or url"
    if worker.stage == JOB_MASTER_STAGE:
        stage = StageSchedulingInfo(number_of_instances=1, machine=JOB_MASTER_MACHINE)
    else:
        stage = info.stages[worker.stage]
    m = stage.machine
    return WorkerSpec(
        worker_key=worker.key, job_id=job.job_id, stage=worker.stage, index=worker.index,
        number=worker.number, entry_point=url,
        parameters=job.definition.parameter_values(), cpus=m.cpu_cores, mem_mb=m.memory_mb,
        disk_mb=m.disk_mb, network_mbps=m.network_mbps, num_ports=m.num_ports,
        hard_constraints=list(stage.hard_constraints), soft_constraints=list(stage.soft_constraints),
        workers_in_stage=job.stage_sizes[worker.stage],
        health_checks=list(stage.health_checks), readiness_checks=list(stage.readiness_checks))


class JobActor(MantisActor):
    """One job: its workers' lifecycle, kill, scale, resubmit."""

    REQUESTS = (GetJob, GetJobEvents, GetArchivedWorkers, KillJob, ScaleStage, ResubmitWorker, WatchJob)
    ACCEPTS = {
        "new": (StartJob,),
        "running": (*REQUESTS, WorkerLaunched, WorkerStatusBatch, MigrateJob, DescribeActors, Done, Rejected),
        "ended": (*REQUESTS, WorkerLaunched, WorkerStatusBatch, MigrateJob, DescribeActors),
    }

    def receiveMsg_StartJob(self, msg: StartJob, sender):
        context = msg.context
        self.cluster_actor, self.scheduler, self.config = sender, context.scheduler, context.config
        self.manager, self.store = context.manager, context.store
        policy = policy_from_config(self.config)
        now = time.time()
        self.job = JobRecord.from_json(msg.record, policy)
        self.sla = JobSlaWatch(JobSlaTerms.of(self.job.definition), since=now)
        effects = self.job.recover(now)
        log.info("job %s running in state %s with %d live worker(s)", self.job.job_id,
                 self.job.state, len(self.job.workers))
        self.phase = "running"
        self._last_summary: dict | None = None
        # The listing fields that change only with the definition or the stage sizes, made
        # once per change rather than on every heartbeat's summary: (key, fields).
        self._listing: tuple[tuple, dict] | None = None
        self.watchers = Watchers()
        self._upstream_sent: dict[str, tuple[list, bool]] = {}  # worker key -> (endpoints, finished) last sent
        self._last_logged_event: dict | None = self.job.events[-1] if self.job.events else None
        self.send_batched(self.scheduler, RegisterJob(self.job.job_id))
        self._carry_out(effects)
        self.start_ticking(float(self.config.workers.check_interval_s))

    # -- effects ------------------------------------------------------------------------

    def _carry_out(self, effects: list[job_state.Effect]) -> None:
        """Persist once if asked, then the other effects in order.

        The write is queued in the shard's store and made durable with the rest of the
        turn before any message sent here leaves the shard; if it fails, none of them
        leaves and the job is reloaded from its last durable record.
        """
        if any(isinstance(e, job_state.Persist) for e in effects) and not self.job.is_terminal:
            self.store.put_job(self.job.cluster, self.job.job_id, self.job.to_json())
        for effect in effects:
            if isinstance(effect, job_state.PlaceWorker):
                self.send_batched(self.scheduler, ScheduleWorker(worker_spec(self.job, effect.worker)))
            elif isinstance(effect, job_state.ReleaseWorker):
                self.send_batched(self.scheduler, CancelWorker(effect.worker_key, effect.agent_id, effect.reason))
            elif isinstance(effect, job_state.WorkerReplaced):
                log.info("worker %s replaced by %s after %.0fs backoff (%s)", effect.old, effect.new,
                         effect.delay_s, effect.reason)
            elif isinstance(effect, job_state.JobEnded):
                self._end(effect)
        self._log_events()
        self._publish()
        self._send_upstreams()

    def _log_events(self) -> None:
        """One log line per job event (migration steps) added since the last call."""
        events = self.job.events
        if not events or events[-1] is self._last_logged_event:
            return
        start = next((i + 1 for i in range(len(events) - 1, -1, -1) if events[i] is self._last_logged_event), 0)
        for event in events[start:]:
            log.info("job %s %s: %s", self.job.job_id, event["type"], event["message"])
        self._last_logged_event = events[-1]

    def _send_upstreams(self) -> None:
        """Tell every running worker of stage n > 1 where stage n-1's workers are, when
        that changed (a replacement, a scale, a new port): this is job discovery."""
        if self.phase != "running" or len(self.job.stage_sizes) < 2:
            return
        cache: dict[int, tuple[list, bool]] = {}
        for w in self.job.workers.values():
            if w.stage < 2 or not w.is_running:
                continue
            if w.replaces is not None:
                # A migration's successor: connecting would take its index's data from the
                # old worker (the upstream keeps one connection per index) before it is ready.
                continue
            upstream = cache.setdefault(w.stage, (self.job.upstream_endpoints(w.stage),
                                                  self.job.upstream_finished(w.stage)))
            if self._upstream_sent.get(w.key) != upstream:
                self._upstream_sent[w.key] = upstream
                self.send_batched(self.scheduler, UpdateUpstream(w.key, *upstream))
        # Forget incarnations that have ended, or a long-lived job would remember them all.
        for key in [k for k in self._upstream_sent if self.job.worker_by_key(k) is None]:
            del self._upstream_sent[key]

    def _end(self, effect: job_state.JobEnded) -> None:
        self.store.archive_job(self.job.cluster, self.job.job_id, self.job.to_json())
        log.info("job %s %s (reason %s), archived", self.job.job_id, effect.state, effect.reason)
        self.send_batched(self.scheduler, UnregisterJob(self.job.job_id))
        self.send(self.cluster_actor, JobFinished(self.job.job_id, effect.state))
        self.phase = "ended"
        self.stop_ticking()  # stale timers are ignored from now on
        self._publish()
        # The cluster actor asks this actor to exit once it has stopped counting the job
        # as active; requests meanwhile are still answered here.

    def _publish(self) -> None:
        if len(self.watchers):
            job = self.job.describe()
            final = self.job.is_terminal
            self.watchers.notify(watched_view(job), lambda w: self.send(w, JobChanged(self.job.job_id, job, final)))
            if final:
                self.watchers.clear()
        summary = self.summary()
        if summary != self._last_summary:
            if self._last_summary is None or summary["state"] != self._last_summary["state"]:
                self.send(self.cluster_actor, JobSummary(self.job.job_id, self.job.cluster, summary))
            self._last_summary = summary
            self.send(self.manager, JobSummary(self.job.job_id, self.job.cluster, summary,
                                               None if self.job.is_terminal else self.myAddress))

    def summary(self) -> dict:
        """The job's entry in listings: state and workers counted by state."""
        counts: dict[str, int] = {}
        for w in self.job.workers.values():
            counts[w.state] = counts.get(w.state, 0) + 1
        return {"jobId": self.job.job_id, "clusterName": self.job.cluster, "state": self.job.state,
                "submittedAt": self.job.submitted_at, "endedAt": self.job.ended_at, "workers": counts,
                **self._listing_fields()}

    def _listing_fields(self) -> dict:
        """What Mantis' compact job listing shows besides state and counts: fixed for the
        job's life but for its artifact (a migration) and stage sizes.  As in Mantis, the Job
        Master's stage 0 counts."""
        d, sizes = self.job.definition, self.job.stage_sizes
        key = (d.url, tuple(sizes.items()))
        if self._listing is None or self._listing[0] != key:
            machines = {n: s.machine for n, s in (d.scheduling_info.stages if d.scheduling_info else {}).items()}
            machines[JOB_MASTER_STAGE] = JOB_MASTER_MACHINE
            fields = {
                "user": d.user, "stageSizes": {str(k): v for k, v in sizes.items() if k != JOB_MASTER_STAGE},
                "jarUrl": d.url, "type": d.job_sla.duration_type if d.job_sla else "Perpetual",
                "labels": [label.to_json() for label in d.labels], "numStages": len(sizes),
                "numWorkers": sum(sizes.values()),
                "totCPUs": sum(n * machines[s].cpu_cores for s, n in sizes.items() if s in machines),
                "totMemory": sum(n * machines[s].memory_mb for s, n in sizes.items() if s in machines)}
            self._listing = (key, fields)
        return self._listing[1]

    # -- messages -----------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        if self.phase == "running":
            self._carry_out(self.job.tick(now))
        if self.phase == "running" and self.job.is_active and self.sla.terms.applies:
            kill = self.sla.check(now, self.job.started_at, self.job.output_subscribers())
            if kill is not None:
                log.info("job %s killed by its SLA (%s): %s", self.job.job_id, kill.reason, kill.message)
                self._carry_out(self.job.kill(kill.reason, kill.message, now))

    def receiveMsg_WorkerLaunched(self, msg: WorkerLaunched, sender):
        try:
            effects = self.job.worker_launched(msg.worker_key, msg.agent_id, msg.host, msg.ports, time.time())
        except TransitionRejected as exc:
            log.warning("%s", exc)
            # Placed after the worker went away (killed, scaled down): release it.
            self.send_batched(self.scheduler, CancelWorker(msg.worker_key, msg.agent_id, "no longer wanted"))
            return
        self._carry_out(effects)

    def receiveMsg_WorkerStatusBatch(self, msg: WorkerStatusBatch, sender):
        now = time.time()
        effects: list = []
        # One message is one stimulus: the story shows which reports came together.
        stimulus_id = new_stimulus_id(f"status-batch-{msg.agent_id}")
        for status in msg.statuses:
            try:
                effects += self.job.worker_status(status.worker_key, status.status, now,
                                                  status.reason, status.metrics, stimulus_id=stimulus_id)
            except TransitionRejected as exc:
                if self.job.worker_by_key(status.worker_key) is None and status.status not in (
                        "Completed", "Failed"):
                    # An incarnation this job no longer wants is still running: stop it.
                    effects.append(job_state.ReleaseWorker(status.worker_key, msg.agent_id, "not a live worker"))
                else:
                    log.info("%s", exc)
        self._carry_out(effects)

    def receiveMsg_MigrateJob(self, msg: MigrateJob, sender):
        if self.phase != "running":
            return  # ended meanwhile: nothing to move
        try:
            effects = migration.start(self.job, msg.url, msg.version, MigrationConfig.parse(msg.migration_config),
                                      time.time(), new_stimulus_id("migrate"))
        except (TransitionRejected, ValidationError) as exc:
            log.info("job %s not migrated: %s", self.job.job_id, exc)
            return
        self._carry_out(effects)

    def receiveMsg_GetJob(self, msg: GetJob, sender):
        self.answer(msg, sender, Done(self.job.describe()))

    def receiveMsg_WatchJob(self, msg: WatchJob, sender):
        watcher = msg.reply_to or sender
        self.answer(msg, sender, JobChanged(self.job.job_id, self.job.describe(), self.job.is_terminal))
        if not self.job.is_terminal:
            self.watchers.renew(watcher, msg.lease_s)

    def receiveMsg_GetArchivedWorkers(self, msg: GetArchivedWorkers, sender):
        self.answer(msg, sender, Done([w.describe() for w in self.job.archived_workers]))

    def receiveMsg_GetJobEvents(self, msg: GetJobEvents, sender):
        self.answer(msg, sender, Done(list(self.job.events)))

    def receiveMsg_KillJob(self, msg: KillJob, sender):
        if self.phase == "ended" or not self.job.is_active:
            self.answer(msg, sender, Rejected(409, f"job {self.job.job_id} is already {self.job.state}"))
            return
        log.info("job %s kill requested by %s: %s %s", self.job.job_id, msg.user, msg.reason, msg.message)
        self._carry_out(self.job.kill(msg.reason, msg.message, time.time(), user=msg.user))
        self.answer(msg, sender, JobKilled(self.job.job_id, self.job.state))

    def receiveMsg_ScaleStage(self, msg: ScaleStage, sender):
        try:
            self._running_only()
            effects = self.job.scale_stage(msg.stage, msg.count, time.time(), user=msg.user, reason=msg.reason)
        except TransitionRejected as exc:
            self.answer(msg, sender, Rejected(409, str(exc)))
            return
        self._carry_out(effects)
        log.info("job %s stage %d scaled to %d by %s (%s)", self.job.job_id, msg.stage, msg.count, msg.user,
                 msg.reason)
        self.answer(msg, sender, StageScaled(self.job.job_id, msg.stage, msg.count))

    def receiveMsg_ResubmitWorker(self, msg: ResubmitWorker, sender):
        try:
            self._running_only()
            effects = self.job.resubmit_worker(msg.number, msg.reason or f"by {msg.user}", time.time())
        except TransitionRejected as exc:
            self.answer(msg, sender, Rejected(409, str(exc)))
            return
        self._carry_out(effects)
        self.answer(msg, sender, WorkerResubmitted(self.job.job_id, msg.number))

    def _running_only(self) -> None:
        if self.phase != "running":
            raise TransitionRejected(f"job {self.job.job_id} is {self.job.state}")

    def receiveMsg_Done(self, msg, sender):
        pass

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("job %s: %s", self.job.job_id, msg.reason)

    def receiveMsg_DescribeActors(self, msg, sender):
        self.answer(msg, sender, Done(self.summary()))

    def describe_actor(self) -> dict:
        """This job's entry in the admin view."""
        return {"jobState": self.job.state, "workers": self.summary()["workers"],
                "story": self.job.describe_story()}
