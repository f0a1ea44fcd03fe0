"""JobClusterActor: one job cluster, its job id counter and its JobActors.

It applies cluster changes through ``mantis.cluster_state.JobCluster`` (the rules),
persists the cluster record before answering, starts one JobActor per job (new or
recovered from the store) and routes job requests to them.  Submitted jobs are
checked here first: the entry point must load and the parameters must resolve, so a
bad submission is a 400 rather than a worker that fails forever.
"""
from __future__ import annotations

import logging
import time

from actors.base import MantisActor
from actors.messages import (ClusterSummary, DeleteCluster, DescribeActors, Done, GetCluster,
                             JobFinished, JobRequest, JobSummary, LoadCluster, Rejected, StartJob,
                             SubmitJob, UpdateCluster)
from mantis.cluster_state import JobCluster
from mantis.codec import ValidationError
from mantis.definitions import JobClusterDefinition, JobSla, Label
from mantis.job_state import Job
from mantis.lifecycle import TransitionRejected
from mantis.store import open_store

log = logging.getLogger("mantis.cluster")


def check_job_loads(url: str, parameters: dict) -> None:
    """Raise ValidationError if the job at ``url`` cannot load or its parameters do not resolve."""
    from mantis.job_dsl import JobLoadError, ParameterError, load_job, resolve_parameters

    try:
        resolve_parameters(load_job(url), parameters)
    except (JobLoadError, ParameterError) as exc:
        raise ValidationError(str(exc)) from None


class JobClusterActor(MantisActor):
    """One cluster: definition changes, submits, its jobs' actors."""

    ACCEPTS = {
        "new": (LoadCluster,),
        "running": (GetCluster, UpdateCluster, DeleteCluster, SubmitJob, JobRequest, JobSummary,
                    JobFinished, DescribeActors, Done, Rejected),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.jobs: dict[str, object] = {}  # active job id -> JobActor address
        self.job_summaries: dict[str, dict] = {}

    def receiveMsg_LoadCluster(self, msg: LoadCluster, sender):
        self.manager, self.config, self.scheduler = sender, msg.config, msg.scheduler
        self.store = open_store(msg.config.get("store", {}))
        self.cluster = JobCluster.from_json(msg.record)
        if msg.is_new:
            try:
                self.store.put_cluster(self.cluster.name, self.cluster.to_json())
            except OSError as exc:
                self.send(msg.reply_to, Rejected(503, f"could not store cluster: {exc}"))
                self._gone()
                return
            log.info("job cluster %s created", self.cluster.name)
            self.send(msg.reply_to, Done(self.cluster.describe()))
        else:
            self._recover_jobs()
        self.phase = "running"
        self._publish()

    def _recover_jobs(self) -> None:
        for record in self.store.jobs(self.cluster.name):
            self._start_job_actor(StartJob(record["jobId"], self.cluster.name, record=record))
        known = {r for r in self.jobs}
        # A job counted active but with no stored record never finished being created.
        self.cluster.active_jobs = [j for j in self.cluster.active_jobs if j in known]
        log.info("job cluster %s recovered with %d active job(s)", self.cluster.name, len(self.jobs))

    def _start_job_actor(self, start: StartJob) -> None:
        from actors.job_actor import JobActor

        start.config, start.scheduler = self.config, self.scheduler
        address = self.createActor(JobActor)
        self.jobs[start.job_id] = address
        self.send(address, start)

    def _persist(self) -> None:
        self.store.put_cluster(self.cluster.name, self.cluster.to_json())

    def _change(self, msg, sender, change) -> tuple[bool, object]:
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
            return False, None

    def _publish(self) -> None:
        self.send(self.manager, ClusterSummary(self.cluster.name, self.cluster.describe()))

    def _gone(self) -> None:
        self.send(self.manager, ClusterSummary(self.cluster.name, None))
        from thespian.actors import ActorExitRequest

        self.send(self.myAddress, ActorExitRequest())

    # -- cluster requests --------------------------------------------------------------

    def receiveMsg_GetCluster(self, msg: GetCluster, sender):
        self.answer(msg, sender, Done(self.cluster.describe()))

    def receiveMsg_UpdateCluster(self, msg: UpdateCluster, sender):
        handler = getattr(self, f"_action_{msg.action}", None)
        if handler is None:
            self.answer(msg, sender, Rejected(404, f"unknown cluster action {msg.action!r}"))
            return
        ok, _ = self._change(msg, sender, lambda: (handler(**msg.args), self._persist()))
        if not ok:
            return
        log.info("job cluster %s: %s by %s", self.cluster.name, msg.action, msg.args.get("user", "?"))
        self._publish()
        self.answer(msg, sender, Done(self.cluster.describe()))

    def _action_update(self, definition: JobClusterDefinition, user: str = "unknown") -> None:
        self.cluster.update(definition, time.time())

    def _action_updateArtifact(self, url: str, version: str, user: str = "unknown") -> None:
        definition = JobClusterDefinition.from_json({**self.cluster.definition.to_json(),
                                                     "url": url, "version": version})
        self.cluster.update(definition, time.time())

    def _action_updateSla(self, sla_min: int, sla_max: int, cron_spec=None,
                          cron_policy: str = "KEEP_EXISTING", user: str = "unknown") -> None:
        definition = JobClusterDefinition.from_json({
            **self.cluster.definition.to_json(), "slaMin": sla_min, "slaMax": sla_max,
            "cronSpec": cron_spec, "cronPolicy": cron_policy})
        self.cluster.update(definition, time.time())

    def _action_updateLabel(self, labels: list[Label], user: str = "unknown") -> None:
        definition = JobClusterDefinition.from_json({**self.cluster.definition.to_json(),
                                                     "labels": [x.to_json() for x in labels]})
        self.cluster.update(definition, time.time())

    def _action_updateJobSla(self, job_sla: JobSla, user: str = "unknown") -> None:
        definition = JobClusterDefinition.from_json({**self.cluster.definition.to_json(),
                                                     "jobSla": job_sla.to_json()})
        self.cluster.update(definition, time.time())

    def _action_enableCluster(self, user: str = "unknown") -> None:
        self.cluster.apply("enable")

    def _action_disableCluster(self, user: str = "unknown") -> None:
        self.cluster.apply("disable")
        for job_id, address in self.jobs.items():  # a disabled cluster runs no job
            self.send(address, JobRequest(job_id, "kill", {"reason": "Killed",
                                                           "message": "cluster disabled",
                                                           "user": user}, reply_to=self.myAddress))

    def receiveMsg_DeleteCluster(self, msg: DeleteCluster, sender):
        try:
            self.cluster.delete()
            self.store.delete_cluster(self.cluster.name)
        except TransitionRejected as exc:
            self.answer(msg, sender, Rejected(409, str(exc)))
            return
        log.info("job cluster %s deleted by %s", self.cluster.name, msg.user)
        self.answer(msg, sender, Done({"deleted": self.cluster.name}))
        self._gone()

    # -- jobs -------------------------------------------------------------------------

    def receiveMsg_SubmitJob(self, msg: SubmitJob, sender):
        now = time.time()

        def submit() -> Job:
            job_id, definition = self.cluster.submit(msg.definition, now)
            check_job_loads(definition.url, definition.parameter_values())
            # The job's record is written here, so the submit is acknowledged once it is
            # durable, without waiting for its actor's process to start.
            job, _ = Job.submit(job_id, self.cluster.name, definition, now)
            self.store.put_job(self.cluster.name, job_id, job.to_json())
            self._persist()
            return job

        ok, job = self._change(msg, sender, submit)
        if not ok:
            return
        log.info("job %s submitted by %s", job.job_id, job.definition.user)
        self.answer(msg, sender, Done({"jobId": job.job_id}))
        self._start_job_actor(StartJob(job.job_id, self.cluster.name, record=job.to_json()))
        self._publish()

    def receiveMsg_JobRequest(self, msg: JobRequest, sender):
        address = self.jobs.get(msg.job_id)
        if address is not None:
            self.send(address, msg)
            return
        record = self.store.archived_job(self.cluster.name, msg.job_id)
        if record is None:
            self.answer(msg, sender, Rejected(404, f"job {msg.job_id} does not exist"))
        elif msg.action == "get":
            self.answer(msg, sender, Done(Job.from_json(record).describe()))
        elif msg.action == "archivedWorkers":
            workers = Job.from_json(record).archived_workers
            self.answer(msg, sender, Done([w.describe() for w in workers]))
        else:
            self.answer(msg, sender, Rejected(409, f"job {msg.job_id} has ended ({record['state']})"))

    def receiveMsg_JobSummary(self, msg: JobSummary, sender):
        if msg.summary.get("state") in ("Completed", "Failed"):
            self.job_summaries.pop(msg.job_id, None)
        else:
            self.job_summaries[msg.job_id] = msg.summary
        self.send(self.manager, msg)

    def receiveMsg_JobFinished(self, msg: JobFinished, sender):
        from thespian.actors import ActorExitRequest

        self.jobs.pop(msg.job_id, None)
        self.send(sender, ActorExitRequest())
        self.cluster.job_ended(msg.job_id)
        self._persist()
        log.info("job %s ended %s", msg.job_id, msg.state)
        self._publish()

    def on_child_exited(self, address) -> None:
        for job_id, job_address in list(self.jobs.items()):
            if job_address == address and not self.exiting:
                # The job's actor died without ending the job: start a new one from the store.
                record = next((r for r in self.store.jobs(self.cluster.name) if r["jobId"] == job_id), None)
                del self.jobs[job_id]
                if record is not None:
                    log.warning("job actor of %s exited unexpectedly; restarting it from the store", job_id)
                    self._start_job_actor(StartJob(job_id, self.cluster.name, record=record))
                return

    def receiveMsg_Done(self, msg, sender):
        pass  # answers to kills this actor sent on disable

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("job cluster %s: %s", self.cluster.name, msg.reason)

    def receiveMsg_DescribeActors(self, msg, sender):
        self.answer(msg, sender, Done({"name": self.cluster.name, "jobs": list(self.jobs)}))
