"""A stand-in for ``webapi.gateway.Gateway`` so the REST handlers can be tested without actors.

It has the Gateway's surface (``ask(message, to=...)``, ``watch``, ``config``, ``master``)
and behaves as the Gateway does at its edge: it runs the message's ``validate()`` first
(a ValidationError is a 400 ApiError), turns a ``Rejected`` answer into an ApiError with
its status and a ``Done`` answer into its body.  What it answers is canned per message
type, and every message it was asked is recorded with its target, so a test can check
which typed message a request became.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.messages import Done, Rejected
from mantis.model.codec import ValidationError
from webapi.gateway import ApiError

# What the actors answer, as JobCluster.describe() and JobRecord.describe() give it.
DESCRIBED_CLUSTER = {
    "name": "synth", "url": "mantis.examples.synthetic:job", "version": "1", "owner": {}, "user": "ann",
    "parameters": [], "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1}}}, "jobSla": {}, "labels": [],
    "slaMin": 0, "slaMax": 0, "cronSpec": None, "cronPolicy": "KEEP_EXISTING",
    "migrationConfig": {"strategy": "ONE_WORKER", "configString": ""}, "state": "Enabled", "disabled": False,
    "createdAt": 1700000000.5, "updatedAt": 1700000000.5, "activeJobs": [], "latestJobNumber": 0,
    "jars": [{"url": "mantis.examples.synthetic:job", "version": "1", "uploadedAt": 1700000000.5,
              "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1}}}}],
}
DESCRIBED_JOB = {
    "jobId": "synth-1", "clusterName": "synth", "state": "Launched", "user": "ann", "version": "1",
    "url": "mantis.examples.synthetic:job", "submittedAt": 1700000000.25, "endedAt": None,
    "killReason": None, "killMessage": None, "parameters": [], "labels": [], "jobSla": {},
    "stageSizes": {"1": 2}, "subscriptionTimeoutSecs": 300, "nextWorkerNumber": 3,
    "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2, "machineDefinition": {"cpuCores": 1.0}}}},
    "workers": [
        {"workerId": f"synth-1/w{n}", "jobId": "synth-1", "stageNum": 1, "workerIndex": n - 1, "workerNumber": n,
         "state": state, "reason": None, "resubmitOf": None, "totalResubmitCount": 0, "agentId": "a1",
         "host": "127.0.0.1", "ports": [7000 + n], "acceptedAt": 1700000000.3, "launchedAt": None,
         "startedAt": None, "completedAt": None, "lastHeartbeatAt": None, "metrics": {}}
        for n, state in ((1, "Started"), (2, "Accepted"))],
}


# What masterInfo and masterConfigs read from the config.
CONFIG = {"master": {"host": "127.0.0.1", "api_port": 8100, "actor_system_base": "simpleSystemBase",
                     "admin_port": 19500}}


@dataclass
class FakeMaster:
    """The Gateway's ``master``: masterInfo shows its actors' addresses (None here: no TCP base)."""

    manager: Any = "manager"
    scheduler: Any = "scheduler"
    base: str = "simpleSystemBase"


@dataclass
class Asked:
    """One recorded ``ask``: the typed message and the actor it was addressed to."""

    message: Any
    to: str


@dataclass
class FakeGateway:
    """Answers every ``ask`` from ``answers`` (message type -> Done, Rejected or an exception
    to raise), ``Done({})`` by default, and records it in ``asked``."""

    answers: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)
    config: dict = field(default_factory=lambda: CONFIG)
    master: FakeMaster = field(default_factory=FakeMaster)
    unavailable: bool = False  # every ask is the 503 the real Gateway raises when no actor answers

    async def ask(self, message: Any, to: str = "manager", timeout: float = 10.0) -> Any:
        # Validation happens before anything is sent, exactly as in the real Gateway, so a
        # malformed request is refused without being recorded.
        validate = getattr(message, "validate", None)
        if validate is not None:
            try:
                validate()
            except ValidationError as exc:
                raise ApiError(400, str(exc)) from None
        self.asked.append(Asked(message, to))
        if self.unavailable:
            raise ApiError(503, f"the master did not answer {type(message).__name__} within {timeout:.0f}s")
        answer = self.answers.get(type(message), Done({}))
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Rejected):
            raise ApiError(answer.status, answer.reason)
        return answer.body

    def watch(self, message, callback):
        """No pushes from a fake: None tells the stream handlers to poll, as under simpleSystemBase."""
        return None

    def close(self) -> None:
        """Nothing to release."""
