"""Mesos as the resource manager: offers in, leases and tasks out, with no I/O.

To the SchedulerActor a Mesos cluster looks like agents of ours: each Mesos agent that
offers resources (or runs our tasks) is registered as an agent whose offer is what
Mesos currently offers there plus what our tasks there hold, with our tasks as its
running workers.  So the matcher's leases are Mesos offers, and the why-pending
reasons name Mesos agents.  The SchedulerActor then asks this "agent" to launch and
stop workers; the manager turns that into ACCEPT (a LAUNCH of a task built from the
offer) and KILL, and Mesos' status UPDATEs into worker statuses.

``MesosManager`` holds the state and returns effects (dataclasses below) for the
actor shell (``actors/mesos_actor.py``) to carry out; every method takes ``now``.
Rules it keeps:

* An offer nothing was placed on is declined after ``offer_hold_s`` with a
  ``refuse_s`` filter; a RESCIND withdraws it from the agent's lease at once.
* Workers waiting -> REVIVE (at most once per hold time); none -> SUPPRESS.
* A launch whose offers were rescinded or declined meanwhile fails the worker (its
  job replaces it, and the scheduler places it on a current offer).
* A task's state maps to a worker status (``worker_status``); terminal tasks leave.
* FAILURE of an agent: its workers are Failed and the agent is gone.
* After SUBSCRIBED: explicit reconciliation of the tasks known, then implicit.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

NETWORK_MBPS = 10_000.0  # Mesos offers no network resource; a worker's network ask always fits

# Task state -> worker status; None: no change to report.
_STATUS = {
    "TASK_STAGING": None, "TASK_STARTING": "StartInitiated", "TASK_RUNNING": "Started", "TASK_KILLING": None,
    "TASK_FINISHED": "Completed",
}
TERMINAL_TASK_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                                  "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                                  "TASK_UNKNOWN"})


def worker_status(state: str, stopping: bool) -> str | None:
    """The worker status a task state means (``stopping``: we asked for the kill)."""
    if state == "TASK_KILLED":
        return "Completed" if stopping else "Failed"
    if state in _STATUS:
        return _STATUS[state]
    return "Failed"  # FAILED, ERROR, LOST, DROPPED, UNREACHABLE, GONE*, UNKNOWN


# -- resources of an offer (mesos.proto Resource, as JSON) --------------------------------

@dataclass
class OfferedResources:
    """cpus, mem, disk and ports of one or more offers."""

    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    ports: set = field(default_factory=set)

    @classmethod
    def parse(cls, resources: list) -> OfferedResources:
        """From an offer's Resource messages (JSON); other resources are ignored."""
        r = cls()
        for item in resources or []:
            name = item.get("name")
            if name in ("cpus", "mem", "disk") and item.get("type", "SCALAR") == "SCALAR":
                setattr(r, name, getattr(r, name) + float(item["scalar"]["value"]))
            elif name == "ports" and item.get("type", "RANGES") == "RANGES":
                for rng in item["ranges"].get("range", []):
                    r.ports.update(range(int(rng["begin"]), int(rng["end"]) + 1))
        return r

    def add(self, other: OfferedResources) -> None:
        """Add ``other`` to these."""
        self.cpus += other.cpus
        self.mem += other.mem
        self.disk += other.disk
        self.ports |= other.ports


def port_ranges(ports: set) -> list[tuple[int, int]]:
    """A set of ports as sorted ``(begin, end)`` ranges."""
    out: list[tuple[int, int]] = []
    for p in sorted(ports):
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


def attributes_of(offer: dict) -> dict[str, str]:
    """An offer's attributes as text (scalars as their number), for the constraints."""
    out = {}
    for a in offer.get("attributes") or []:
        kind = a.get("type")
        if kind == "TEXT":
            out[a["name"]] = str(a["text"]["value"])
        elif kind == "SCALAR":
            value = float(a["scalar"]["value"])
            out[a["name"]] = str(int(value)) if value.is_integer() else str(value)
        elif kind == "SET":
            out[a["name"]] = ",".join(a["set"].get("item", []))
    return out


# -- what the scheduler is told --------------------------------------------------------------

@dataclass(frozen=True)
class Lease:
    """A Mesos agent as the scheduler sees an agent (the fields of its AgentOfferInfo):
    what Mesos offers there now plus what our tasks there hold."""

    agent_id: str
    hostname: str
    cpus: float
    mem_mb: float
    disk_mb: float
    network_mbps: float
    ports: list
    attributes: dict


@dataclass(frozen=True)
class TaskReport:
    """A worker's status as a task's state says it (the fields of a WorkerStatus)."""

    worker_key: str
    status: str
    reason: str = ""
    metrics: dict | None = None


# -- effects -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegisterMesosAgent:
    """(Re-)register a Mesos agent with the scheduler: its lease, our workers there
    (their specs) and their statuses."""

    lease: Lease
    workers: list
    statuses: list


@dataclass(frozen=True)
class ReportStatuses:
    """Pass workers' statuses (TaskReports) on to the scheduler as the agent's heartbeat."""

    agent_id: str
    statuses: list


@dataclass(frozen=True)
class ForgetAgent:
    """The Mesos agent is gone (FAILURE): the scheduler replaces its workers."""

    agent_id: str
    reason: str


@dataclass(frozen=True)
class Accept:
    """ACCEPT these offers with a LAUNCH of these tasks; the rest of the offers is
    refused for ``refuse_s``."""

    offer_ids: list
    task_infos: list
    refuse_s: float


@dataclass(frozen=True)
class Decline:
    """DECLINE these offers, refusing their agents' resources for ``refuse_s``."""

    offer_ids: list
    refuse_s: float


@dataclass(frozen=True)
class Kill:
    """KILL our task ``task_id`` on ``agent_id``."""

    task_id: str
    agent_id: str


@dataclass(frozen=True)
class Revive:
    """REVIVE: offers again, filters cleared (workers wait)."""


@dataclass(frozen=True)
class Suppress:
    """SUPPRESS: no offers until the next REVIVE (no worker waits)."""


@dataclass(frozen=True)
class Reconcile:
    """RECONCILE: ``tasks`` empty is the implicit kind (every task Mesos knows of ours)."""

    tasks: list


# -- records -------------------------------------------------------------------------------

@dataclass
class HeldOffer:
    """An offer we hold: its JSON, its agent, its resources, when it came."""

    offer: dict
    agent_id: str
    resources: OfferedResources
    received_at: float


@dataclass
class MesosTask:
    """One of our tasks: the worker it runs and what Mesos last said of it."""

    worker_key: str
    agent_id: str
    spec: Any = None          # the WorkerSpec when launched by this master, None when learnt by reconciliation
    state: str = "TASK_STAGING"
    status: str | None = None
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    stopping: str | None = None


@dataclass
class TaskCommand:
    """How a task runs a worker: the command line and the environment it gets."""

    command: str
    environment: dict


def spec_to_json(spec: Any) -> str:
    """The worker spec (a WorkerSpec) a task carries to its ``mantis worker`` command
    (read back by ``mantis.runtime.worker_launch.spec_from_json``)."""
    return json.dumps(dataclasses.asdict(spec), default=str, separators=(",", ":"))


def task_info(spec: Any, offer: dict, run: TaskCommand) -> dict:
    """A TaskInfo (mesos.proto) running ``spec`` with resources taken from ``offer``."""
    extra = {"allocation_info": offer["allocation_info"]} if "allocation_info" in offer else {}
    role = next((r.get("role") for r in offer.get("resources", []) if r.get("role")), None)
    if role:
        extra["role"] = role
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": float(spec.cpus)}, **extra},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": float(spec.mem_mb)}, **extra}]
    if spec.disk_mb:
        resources.append({"name": "disk", "type": "SCALAR", "scalar": {"value": float(spec.disk_mb)}, **extra})
    if spec.ports:
        resources.append({"name": "ports", "type": "RANGES", **extra,
                          "ranges": {"range": [{"begin": b, "end": e} for b, e in port_ranges(set(spec.ports))]}})
    env = dict(run.environment, MANTIS_WORKER_SPEC=spec_to_json(spec))
    return {
        "name": f"mantis worker {spec.worker_key}",
        "task_id": {"value": spec.worker_key},
        "agent_id": {"value": offer["agent_id"]["value"]},
        "resources": resources,
        "command": {"shell": True, "value": run.command,
                    "environment": {"variables": [{"name": k, "value": v} for k, v in sorted(env.items())]}},
        "labels": {"labels": [{"key": "mantis.job", "value": spec.job_id},
                              {"key": "mantis.stage", "value": str(spec.stage)},
                              {"key": "mantis.worker", "value": spec.worker_key}]},
    }


class MesosManager:
    """Offers, our tasks and the Mesos agents we registered, as effects to carry out."""

    def __init__(self, run: TaskCommand, offer_hold_s: float = 5.0, refuse_s: float = 30.0):
        self.run = run
        self.offer_hold_s = float(offer_hold_s)
        self.refuse_s = float(refuse_s)
        self.offers: dict[str, HeldOffer] = {}
        self.tasks: dict[str, MesosTask] = {}      # task id (= worker key) -> task
        self.agents: dict[str, dict] = {}         # agent id -> {"hostname", "attributes"}
        self.launches: dict[str, list] = {}       # agent id -> specs to launch on the next flush
        self.upstream: dict[str, tuple[list, bool]] = {}
        self.suppressed = False
        self.revived_at = -1e9

    # -- the lease an agent shows the scheduler ------------------------------------------

    def _register(self, agent_id: str) -> RegisterMesosAgent:
        info = self.agents[agent_id]
        total = OfferedResources()
        for held in self.offers.values():
            if held.agent_id == agent_id:
                total.add(held.resources)
        workers, statuses = [], []
        for t in self.tasks.values():
            if t.agent_id == agent_id and t.spec is not None:
                total.add(OfferedResources(t.spec.cpus, t.spec.mem_mb, t.spec.disk_mb, set(t.spec.ports)))
                workers.append(t.spec)
            if t.agent_id == agent_id and t.status is not None:
                statuses.append(self._worker_status(t))
        lease = Lease(agent_id=agent_id, hostname=info["hostname"], cpus=round(total.cpus, 6),
                      mem_mb=round(total.mem, 6), disk_mb=round(total.disk, 6), network_mbps=NETWORK_MBPS,
                      ports=port_ranges(total.ports), attributes=dict(info["attributes"]))
        return RegisterMesosAgent(lease, workers, statuses)

    def _worker_status(self, t: MesosTask) -> TaskReport:
        return TaskReport(t.worker_key, t.status or "StartInitiated", t.reason, dict(t.metrics))

    def register_all(self) -> list:
        """Every agent again (the scheduler restarted, or asked)."""
        return [self._register(a) for a in sorted(self.agents)]

    # -- events from Mesos ----------------------------------------------------------------

    def subscribed(self) -> list:
        """SUBSCRIBED: offers of an old stream are void; reconcile what we know, then all."""
        self.offers.clear()
        self.suppressed = False
        explicit = [{"task_id": {"value": t.worker_key}, "agent_id": {"value": t.agent_id}}
                    for t in self.tasks.values()]
        return ([Reconcile(explicit)] if explicit else []) + [Reconcile([])] + self.register_all()

    def offered(self, offers: list, now: float) -> list:
        """OFFERS: hold them (received at ``now``) and show each agent's new lease."""
        changed = set()
        for offer in offers:
            agent_id = offer["agent_id"]["value"]
            self.agents[agent_id] = {"hostname": offer.get("hostname", agent_id),
                                     "attributes": attributes_of(offer)}
            self.offers[offer["id"]["value"]] = HeldOffer(offer, agent_id, OfferedResources.parse(
                offer.get("resources")), now)
            changed.add(agent_id)
        return [self._register(a) for a in sorted(changed)]

    def rescinded(self, offer_id: str) -> list:
        """RESCIND: the offer leaves its agent's lease at once."""
        held = self.offers.pop(offer_id, None)
        return [self._register(held.agent_id)] if held is not None else []

    def updated(self, status: dict) -> list:
        """A task's status (UPDATE, or a reconciliation answer)."""
        task_id = status["task_id"]["value"]
        state = status.get("state", "TASK_UNKNOWN")
        agent_id = (status.get("agent_id") or {}).get("value", "")
        task = self.tasks.get(task_id)
        effects: list = []
        if task is None:
            if state in TERMINAL_TASK_STATES:
                return []
            # A task of ours this master did not launch (it restarted): reattach by status.
            task = self.tasks[task_id] = MesosTask(task_id, agent_id)
            if agent_id not in self.agents:
                self.agents[agent_id] = {"hostname": agent_id, "attributes": {}}
                effects.append(self._register(agent_id))
        task.state = state
        new = worker_status(state, task.stopping is not None)
        reason = status.get("message") or status.get("reason") or state
        if new is None or (new == task.status and state not in TERMINAL_TASK_STATES):
            return effects
        task.status, task.reason = new, f"{state}: {reason}"
        effects.append(ReportStatuses(task.agent_id, [self._worker_status(task)]))
        if state in TERMINAL_TASK_STATES:
            del self.tasks[task_id]
            self.upstream.pop(task_id, None)
            if task.agent_id in self.agents:
                effects.append(self._register(task.agent_id))
        return effects

    def agent_failed(self, agent_id: str) -> list:
        """FAILURE of an agent: its workers fail, the agent goes."""
        gone = [t for t in self.tasks.values() if t.agent_id == agent_id]
        for t in gone:
            del self.tasks[t.worker_key]
            t.status, t.reason = "Failed", f"Mesos agent {agent_id} failed"
        for offer_id in [o for o, h in self.offers.items() if h.agent_id == agent_id]:
            del self.offers[offer_id]
        effects: list = []
        if gone:
            effects.append(ReportStatuses(agent_id, [self._worker_status(t) for t in gone]))
        if self.agents.pop(agent_id, None) is not None:
            effects.append(ForgetAgent(agent_id, f"Mesos agent {agent_id} failed"))
        return effects

    # -- what the scheduler asks ------------------------------------------------------------

    def launch(self, spec: Any) -> list:
        """LaunchWorker: queue it for the next flush (several go in one ACCEPT)."""
        if spec.worker_key in self.tasks or any(s.worker_key == spec.worker_key
                                                for specs in self.launches.values() for s in specs):
            return []  # a repeated launch of a task already launched
        self.launches.setdefault(spec.agent_id, []).append(spec)
        return []

    def flush(self) -> list:
        """ACCEPT each agent's held offers with the launches placed on it; a launch the
        offers no longer cover (rescinded, declined) fails its worker."""
        effects: list = []
        launches, self.launches = self.launches, {}
        for agent_id, specs in launches.items():
            held = [(oid, h) for oid, h in self.offers.items() if h.agent_id == agent_id]
            available = OfferedResources()
            for _, h in held:
                available.add(h.resources)
            infos, failed = [], []
            for spec in specs:
                need = OfferedResources(spec.cpus, spec.mem_mb, spec.disk_mb, set(spec.ports))
                fits = (held and need.cpus <= available.cpus + 1e-9 and need.mem <= available.mem + 1e-9
                        and need.disk <= available.disk + 1e-9 and need.ports <= available.ports)
                if not fits:
                    failed.append(TaskReport(spec.worker_key, "Failed",
                                               f"no current Mesos offer on {agent_id} covers it (rescinded?)"))
                    continue
                available.cpus -= need.cpus
                available.mem -= need.mem
                available.disk -= need.disk
                available.ports -= need.ports
                infos.append(task_info(spec, held[0][1].offer, self.run))
                self.tasks[spec.worker_key] = MesosTask(spec.worker_key, agent_id, spec)
            if infos:
                for oid, _ in held:
                    del self.offers[oid]
                effects.append(Accept([oid for oid, _ in held], infos, 0.0))
            if failed:
                effects.append(ReportStatuses(agent_id, failed))
            if agent_id in self.agents:
                effects.append(self._register(agent_id))
        return effects

    def stop(self, worker_key: str, reason: str) -> list:
        """StopWorkerOnAgent: KILL its task (Completed at once if there is none)."""
        task = self.tasks.get(worker_key)
        for specs in self.launches.values():
            specs[:] = [s for s in specs if s.worker_key != worker_key]
        if task is None:
            return []
        task.stopping = reason
        return [Kill(worker_key, task.agent_id)]

    def set_upstream(self, worker_key: str, endpoints: list, finished: bool) -> None:
        """UpdateUpstream: kept until the worker next reports."""
        self.upstream[worker_key] = (list(endpoints), bool(finished))

    def worker_report(self, worker_key: str, metrics: dict) -> dict:
        """A worker's own heartbeat (metrics); answers where its upstream workers are."""
        task = self.tasks.get(worker_key)
        if task is not None:
            task.metrics = dict(metrics)
        endpoints, finished = self.upstream.get(worker_key, ([], False))
        return {"known": task is not None, "endpoints": endpoints, "upstreamFinished": finished}

    # -- time -----------------------------------------------------------------------------

    def heartbeats(self) -> list:
        """Each agent's live workers' statuses (also the agent's liveness to the scheduler)."""
        by_agent: dict[str, list] = {a: [] for a in self.agents}
        for t in self.tasks.values():
            if t.status is not None and t.agent_id in by_agent:
                by_agent[t.agent_id].append(self._worker_status(t))
        return [ReportStatuses(a, s) for a, s in sorted(by_agent.items())]

    def expire_offers(self, now: float) -> list:
        """Decline offers held past the hold time, with the refuse filter."""
        old = [oid for oid, h in self.offers.items() if now - h.received_at >= self.offer_hold_s]
        if not old:
            return []
        agents = {self.offers[oid].agent_id for oid in old}
        for oid in old:
            del self.offers[oid]
        return [Decline(old, self.refuse_s)] + [self._register(a) for a in sorted(agents)]

    def waiting(self, pending: int, now: float) -> list:
        """Workers waiting -> REVIVE (once per hold time); none -> SUPPRESS."""
        if pending > 0 and (self.suppressed or now - self.revived_at >= self.offer_hold_s):
            self.suppressed, self.revived_at = False, now
            return [Revive()]
        if pending == 0 and not self.suppressed and not self.launches:
            self.suppressed = True
            return [Suppress()]
        return []
