"""HealthCheckerActor: runs the health and readiness checks of an agent's workers.

Checks run on the agent, next to the workers, as Mesos' agent-side checks do, not in
the master: a probe reaches the worker over loopback and a command runs on the
worker's own machine; a network partition between master and agent does not make
healthy workers look dead (the master already judges liveness by heartbeats); and the
work grows with the agents, not in one master process (Marathon moved its HTTP checks
from its own process to the Mesos agents for these reasons).

It is a child actor of the AgentActor, in a process of its own: the probes run on a
small thread pool, and the agent forks its workers, which must not inherit threads
caught holding locks.  The rules (grace, intervals, consecutive failures, readiness)
are ``mantis.lifecycles.health_checks``; this shell starts due probes, feeds results
back on its tick, and tells the agent each verdict once.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from actors.base import MantisActor
from actors.messages import Done, ForgetWorkerHealth, HealthVerdict, WatchWorkerHealth
from mantis.lifecycles.health_checks import CheckTracker, Ready, Unhealthy, WorkerChecks
from mantis.model.checks import CheckDefinition
from mantis.runtime.health_probes import ProbeTarget, probe

log = logging.getLogger("mantis.health")

# How often due probes are started and results collected: the finest interval a check
# can have in practice.
TICK_S = 0.25
PROBE_THREADS = 4


class HealthCheckerActor(MantisActor):
    """Checks the workers the agent tells it about; answers with HealthVerdict messages."""

    ACCEPTS = {"new": (WatchWorkerHealth, ForgetWorkerHealth),
               "running": (WatchWorkerHealth, ForgetWorkerHealth, Done)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.workers: dict[str, tuple[WorkerChecks, ProbeTarget]] = {}
        self.running: dict[Future, tuple[str, CheckTracker]] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.agent = None

    def receiveMsg_WatchWorkerHealth(self, msg: WatchWorkerHealth, sender):
        self.agent = sender
        if self.phase == "new":
            self.pool = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="health-probe")
            self.phase = "running"
            self.start_ticking(TICK_S)
        checks = WorkerChecks.start(msg.worker_key, [CheckDefinition.from_json(c) for c in msg.health],
                                    [CheckDefinition.from_json(c) for c in msg.readiness], time.time())
        self.workers[msg.worker_key] = (checks, msg.target)
        log.info("checking worker %s: %d health, %d readiness check(s)", msg.worker_key,
                 len(checks.health), len(checks.readiness))
        if checks.ready:  # no readiness check: ready at once
            self.send(sender, HealthVerdict(msg.worker_key, "ready"))
        self._start_due(time.time())

    def receiveMsg_ForgetWorkerHealth(self, msg: ForgetWorkerHealth, sender):
        self.workers.pop(msg.worker_key, None)

    def receiveMsg_Done(self, msg, sender):
        pass

    def on_tick(self, now: float) -> None:
        for future, (key, tracker) in list(self.running.items()):
            if future.done():
                del self.running[future]
                ok, message = future.result()
                self._record(key, tracker, ok, message, now)
        for key, (checks, _) in list(self.workers.items()):
            for tracker in checks.overdue(now):
                # The probe's own timeout should have ended it; its result is too late now.
                self.running = {f: v for f, v in self.running.items() if v[1] is not tracker}
                self._record(key, tracker, False, f"{tracker.check.describe()}: no answer within "
                                                  f"{tracker.check.timeout_s:g}s", now)
        self._start_due(now)

    def _record(self, key: str, tracker: CheckTracker, ok: bool, message: str, now: float) -> None:
        entry = self.workers.get(key)
        if entry is None or entry[0] is not self._owner(tracker):
            return  # the worker went away while its probe ran
        for effect in entry[0].record(tracker, ok, message, now):
            if isinstance(effect, Unhealthy):
                log.info("worker %s unhealthy: %s", key, effect.reason)
                self.send(self.agent, HealthVerdict(key, "unhealthy", effect.reason))
            elif isinstance(effect, Ready):
                log.info("worker %s ready: %s", key, message)
                self.send(self.agent, HealthVerdict(key, "ready"))

    def _owner(self, tracker: CheckTracker) -> WorkerChecks | None:
        entry = self.workers.get(tracker.worker_key)
        return entry[0] if entry is not None and any(t is tracker for t in entry[0].trackers) else None

    def _start_due(self, now: float) -> None:
        assert self.pool is not None
        for key, (checks, target) in self.workers.items():
            for tracker in checks.due(now):
                tracker.begin(now)
                future = self.pool.submit(probe, tracker.check, target, tracker.readiness)
                self.running[future] = (key, tracker)

    def on_exit(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
