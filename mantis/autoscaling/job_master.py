"""The Job Master: the hidden stage 0 worker that autoscales a job's processing stages.

It runs in a worker process like any other (placed by the scheduler, replaced when it
fails) and, every ``sample_interval_s``:

1. reads the job from the master (``GET /api/v1/jobs/{jobId}``): its scalable stages
   and their policies, each stage's size, and where each Started worker serves its
   metrics (``host`` and ``metricsPort``): this is how it follows discovery;
2. reads every worker's metrics endpoint (``/metrics.json``) into a ``MetricWindow``;
3. steps each scalable stage's ``StageScaler`` on the stage's sample (held back with
   ``resizing`` while the stage's workers are not all Started at its size, for at most
   two cooldowns after a resize: workers that cannot be placed do not freeze it);
4. asks the master to resize a stage through the API's own ``scaleStage`` action, as
   user ``JobMaster``, with the decision's reason in Mantis' words.

Its decisions (the last ``history`` per stage, held back ones too) are served with its
metrics.  It ends (completed) when the job has ended, and fails when it cannot read
the job for ``give_up_s`` (the master replaces it).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mantis.autoscaling.policy import parse_policy
from mantis.autoscaling.sampling import Machine, MetricWindow
from mantis.autoscaling.stage_scaler import HOLD, Decision, StageScaler
from mantis.ha.master_address import master_url
from mantis.model.codec import ValidationError

log = logging.getLogger("mantis.jobmaster")

JOB_MASTER_USER = "JobMaster"
RESIZING = "resizing"
TERMINAL_JOB_STATES = ("Completed", "Failed")
HTTP_TIMEOUT_S = 2.0
# How long (in cooldowns) after a resize the stage is held back while its workers start.
RESIZE_PATIENCE_COOLDOWNS = 2.0


def job_from_view(view: dict) -> dict:
    """What a round reads, from the job as the API answers it (Mantis' ``{jobMetadata,
    stageMetadataList, workerMetadataList}``): ``state``, ``workers`` (each with
    ``stageNum``, ``workerIndex``, ``workerNumber``, ``state``, ``host``, ``metrics``),
    ``stageSizes`` and each stage's ``schedulingInfo`` (machine, scalable, scalingPolicy)."""
    stages = [s for s in view.get("stageMetadataList") or [] if int(s.get("stageNum", 0)) >= 1]
    return {
        "state": (view.get("jobMetadata") or {}).get("state"),
        "workers": list(view.get("workerMetadataList") or []),
        "stageSizes": {str(s["stageNum"]): int(s.get("numWorkers") or 0) for s in stages},
        "schedulingInfo": {"stages": {str(s["stageNum"]): {
            "machineDefinition": s.get("machineDefinition") or {}, "scalable": bool(s.get("scalable")),
            "scalingPolicy": s.get("scalingPolicy")} for s in stages}},
    }


@dataclass(frozen=True)
class JobMasterMetrics:
    """What the Job Master's heartbeat carries (``to_json``)."""

    state: str
    scale_actions: int
    decisions: int
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """camelCase, as a stage worker's metrics are."""
        return {"stage": 0, "state": self.state, "scaleActions": self.scale_actions,
                "decisions": self.decisions, "error": self.error}


def _get_json(url: str, timeout: float = HTTP_TIMEOUT_S) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post_json(url: str, body: dict, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None


class JobMaster:
    """Autoscales job ``job_id``'s scalable stages (see the module docstring).

    The interface is a stage worker's (``start``, ``state``, ``error``, ``metrics``,
    ``stop``, ``wait``), so a WorkerActor runs either.  ``master`` gives the master's
    API URL; ``clock`` times the strategies and stamps the decisions (wall-clock seconds by
    default, so a decision's ``at`` compares with the job's events).
    """

    def __init__(self, job_id: str, master: Callable[[], str] = master_url,
                 sample_interval_s: float = 1.0, window_s: float = 5.0, give_up_s: float = 60.0,
                 history: int = 200, clock: Callable[[], float] = time.time):
        self.job_id = job_id
        self.master = master
        self.sample_interval_s, self.give_up_s = sample_interval_s, give_up_s
        self.window = MetricWindow(window_s)
        self.clock = clock
        self.history = history
        self.scalers: dict[int, StageScaler] = {}
        self.machines: dict[int, Machine] = {}
        self.scale_actions = 0
        self.error: str | None = None
        self._state = "created"
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"job-master-{job_id}")

    @property
    def state(self) -> str:
        """created, running, completed (the job ended, or stopped) or failed."""
        return self._state

    @property
    def port(self) -> int:
        """A Job Master serves no output (its metrics endpoint is the worker's)."""
        return 0

    def start(self) -> None:
        """Start following the job on a daemon thread."""
        self._state = "running"
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop following the job; True once the thread has ended."""
        self._stopping.set()
        if self._state == "created":
            self._state = "completed"
            self._finished.set()
            return True
        return self._finished.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the Job Master has ended (True) or ``timeout`` passes."""
        return self._finished.wait(timeout)

    def metrics(self) -> JobMasterMetrics:
        """Counts for the heartbeat."""
        with self._lock:
            decisions = sum(len(s.decisions) for s in self.scalers.values())
        return JobMasterMetrics(self._state, self.scale_actions, decisions, self.error)

    def decisions(self) -> list[dict[str, Any]]:
        """Every stage's recorded decisions, oldest first per stage."""
        with self._lock:
            return [d.to_json() for stage in sorted(self.scalers) for d in self.scalers[stage].decisions]

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        last_read = self.clock()
        try:
            while not self._stopping.is_set():
                began = self.clock()
                try:
                    job = job_from_view(_get_json(f"{self.master()}/api/v1/jobs/{self.job_id}"))
                except (OSError, ValueError) as exc:
                    if began - last_read > self.give_up_s:
                        raise RuntimeError(f"could not read job {self.job_id} for {self.give_up_s:.0f}s: "
                                           f"{exc}") from exc
                    self._stopping.wait(self.sample_interval_s)
                    continue
                last_read = began
                if job.get("state") in TERMINAL_JOB_STATES:
                    break
                self.step(job, began)
                self._stopping.wait(max(self.sample_interval_s - (self.clock() - began), 0.05))
            self._state = "completed"
        except Exception as exc:  # a bug or a policy the job cannot have: fail, get replaced
            log.warning("job master of %s failed: %s", self.job_id, exc)
            self.error = f"{type(exc).__name__}: {exc}"
            self._state = "failed"
        finally:
            self._finished.set()

    def step(self, job: dict, now: float) -> list[Decision]:
        """One round over ``job`` (as ``GET /api/v1/jobs/{id}`` shows it): read the workers'
        metrics, decide for each scalable stage, ask for the resizes.  The decisions."""
        self._know_stages(job, now)
        live: set[str] = set()
        started: dict[int, int] = {}
        for w in job.get("workers", []):
            stage, metrics = int(w["stageNum"]), w.get("metrics") or {}
            if stage < 1 or w.get("state") != "Started":
                continue
            started[stage] = started.get(stage, 0) + 1
            if not metrics.get("metricsPort"):
                continue  # its first heartbeat is on the way
            key = f"{stage}:{w['workerIndex']}:{w['workerNumber']}"
            host = w.get("host") or metrics.get("host") or "127.0.0.1"
            try:
                snapshot = _get_json(f"http://{host}:{metrics['metricsPort']}/metrics.json", 1.0)
            except (OSError, ValueError):
                continue  # gone or busy: its window keeps what it had
            live.add(key)
            self.window.add(key, stage, now, snapshot)
        self.window.keep_only(live)
        decisions = []
        sizes = {int(k): int(v) for k, v in (job.get("stageSizes") or {}).items()}
        for stage, scaler in sorted(self.scalers.items()):
            size = sizes.get(stage, 0)
            sample = self.window.sample(stage, now, self.machines[stage])
            with self._lock:
                # Wait for a resize to take effect, but not for ever: workers the
                # scheduler cannot place must not freeze the stage at its size.
                waiting = now - scaler.last_resize_at < RESIZE_PATIENCE_COOLDOWNS * scaler.cooldown_s()
                if started.get(stage, 0) != size and waiting:
                    decision = scaler.hold(now, size, RESIZING,
                                           f"{started.get(stage, 0)} of {size} workers started")
                else:
                    decision = scaler.step(sample, size, now)
            decisions.append(decision)
            if decision.action != HOLD:
                self._ask_to_scale(decision)
        return decisions

    def _know_stages(self, job: dict, now: float) -> None:
        stages = ((job.get("schedulingInfo") or {}).get("stages")) or {}
        for key, info in stages.items():
            stage = int(key)
            raw = info.get("scalingPolicy") or {}
            if stage < 1 or stage in self.scalers or not info.get("scalable") or "strategies" not in raw:
                continue  # not autoscaled (see mantis.lifecycles.job_state.autoscaled)
            try:
                policy = parse_policy(stage, raw)
            except ValidationError as exc:
                raise RuntimeError(f"stage {stage}: {exc}") from exc
            if policy.max <= policy.min:
                continue
            m = info.get("machineDefinition") or {}
            self.machines[stage] = Machine(float(m.get("cpuCores", 1.0)), float(m.get("memoryMB", 1024.0)),
                                           float(m.get("networkMbps", 128.0)))
            with self._lock:
                self.scalers[stage] = StageScaler(policy, started_at=now, history=self.history)
            log.info("job master of %s scales stage %d (%d..%d, cooldown %.0fs) with %s", self.job_id, stage,
                     policy.min, policy.max, policy.cooldown_s, ", ".join(policy.strategies))

    def _ask_to_scale(self, decision: Decision) -> None:
        url = f"{self.master()}/api/v1/jobs/{self.job_id}/actions/scaleStage"
        body = {"JobId": self.job_id, "StageNumber": decision.stage, "NumWorkers": decision.new_size,
                "User": JOB_MASTER_USER, "Reason": decision.reason}
        try:
            status, answer = _post_json(url, body)
        except OSError as exc:
            status, answer = 0, {"error": str(exc)}
        if 200 <= status < 300:  # Mantis' answer is 204
            self.scale_actions += 1
            log.info("job master of %s: stage %d %d -> %d (%s)", self.job_id, decision.stage,
                     decision.old_size, decision.new_size, decision.reason)
        else:
            log.warning("job master of %s: scaling stage %d to %d refused (%s): %s", self.job_id,
                        decision.stage, decision.new_size, status, answer)
