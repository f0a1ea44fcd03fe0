"""The agents the scheduler knows and what is placed on each of them.

The pool is the single record of usage: the matcher reads it to find room and writes
each assignment into it at once, so later requests in the same round see earlier ones.
It keeps the indexes the matcher needs to stay fast:

* enabled agents sorted by free cpus (a ``SortedList``), so a request skips every agent
  too small for it with one bisection and meets the fullest fitting agents first; at
  equal free cpus, agents with some cpus, memory or network in use come before idle
  ones, and idle ones are grouped by their totals (identical idle agents are next to each other, which lets a
  search weigh one and skip the rest), each part ordered by host name.  The order
  depends on the agents alone, not on when they registered, which keeps placement
  reproducible;
* per job (and per job stage) live counts of instances per attribute value, so
  UNIQUE / GROUP_BY / MAX_PER / CLUSTER checks are one dict lookup per agent.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from sortedcontainers import SortedList

from scheduler.constraints import HOSTNAME
from scheduler.resources import AgentOffer, Assignment, WorkerRequest

# Resource amounts are floats (0.1 cpus ...); sums drift, so comparisons allow this slack.
EPSILON = 1e-9


class ValueCounts(dict):
    """Instances per attribute value for one job (or job stage); values with no instance
    are absent.  ``total`` is the sum, kept so GROUP_BY never has to add it up."""

    __slots__ = ("total", "_smallest")

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self._smallest: int | None = None

    def smallest(self) -> int:
        """The fewest instances on any value holding some (0 when none holds any);
        cached until the next change, as GROUP_BY asks it for every agent it checks."""
        if self._smallest is None:
            self._smallest = min(self.values()) if self else 0
        return self._smallest

    def add(self, value: str | None, delta: int) -> None:
        """Count ``delta`` more (or fewer) instances on ``value``; ``None`` is not counted."""
        if value is None:
            return
        self._smallest = None
        count = self.get(value, 0) + delta
        if count > 0:
            self[value] = count
        else:
            self.pop(value, None)
        self.total += delta


@dataclass(slots=True, eq=False)
class PlacedWorker:
    """A worker the pool accounts for: what it uses and where."""

    worker_key: str
    job_id: str
    stage: int
    agent: AgentState
    cpus: float
    mem_mb: float
    disk_mb: float
    network_mbps: float
    ports: list[int]
    exclusive: bool


@dataclass(slots=True, eq=False)
class AgentState:
    """One agent: its offer's totals, what is free, and the workers placed on it.

    Fitness calculators and constraints read these fields; only the pool writes them.
    ``values`` holds the agent's attributes plus its host name under ``@hostname``.
    Free amounts may go negative when restored workers over-commit an agent.
    """

    agent_id: str
    hostname: str
    attributes: dict[str, str]
    values: dict[str, str]
    total_cpus: float
    total_mem_mb: float
    total_disk_mb: float
    total_network_mbps: float
    port_ranges: list[tuple[int, int]]
    free_cpus: float = 0.0
    free_mem_mb: float = 0.0
    free_disk_mb: float = 0.0
    free_network_mbps: float = 0.0
    free_port_count: int = 0
    used_ports: set[int] = field(default_factory=set)
    workers: dict[str, PlacedWorker] = field(default_factory=dict)
    exclusive_workers: int = 0
    disabled: bool = False
    seq: int = 0  # registration order
    # This agent's entry in the pool's free-cpus index, or None when it takes no new
    # placements (disabled, or held by an exclusive worker).
    index_entry: tuple | None = None
    # What resource-only fitness reads: free and total cpus, memory and network, set
    # whenever the agent enters the index (so current for every agent taking placements).
    shape: tuple = ()

    @property
    def used_cpus(self) -> float:
        return self.total_cpus - self.free_cpus

    @property
    def used_mem_mb(self) -> float:
        return self.total_mem_mb - self.free_mem_mb

    @property
    def used_disk_mb(self) -> float:
        return self.total_disk_mb - self.free_disk_mb

    @property
    def used_network_mbps(self) -> float:
        return self.total_network_mbps - self.free_network_mbps

    def in_ranges(self, port: int) -> bool:
        """Whether ``port`` lies in one of the offered ranges."""
        return any(begin <= port <= end for begin, end in self.port_ranges)


class AgentPool:
    """The current agents and what is placed on them (see the module docstring)."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentState] = {}
        self._workers: dict[str, PlacedWorker] = {}
        # (free_cpus, idle group, (hostname, agent_id), agent) of agents taking placements
        # (see the module docstring and ``_index``; the agent id only breaks a shared
        # host name).
        self._by_free_cpus = SortedList()
        self._seq = 0
        self._job_workers: dict[str, dict[str, PlacedWorker]] = {}
        # job id -> {(stage or None, attribute): ValueCounts}, built on first use, then
        # kept current by every assign/release.
        self._value_counts: dict[str, dict[tuple[int | None, str], ValueCounts]] = {}
        self._attribute_values: dict[str, frozenset] = {}
        # Bumped by every change, so a caller can tell that nothing moved since it looked.
        self.version = 0

    # -- agents ---------------------------------------------------------------------------

    def add_agent(self, offer: AgentOffer) -> AgentState:
        """Register an agent, or replace a known agent's totals, ports and attributes while
        keeping the workers placed on it (and whether it is disabled)."""
        old = self._agents.get(offer.agent_id)
        values = dict(offer.attributes)
        values[HOSTNAME] = offer.hostname
        agent = AgentState(agent_id=offer.agent_id, hostname=offer.hostname, attributes=dict(offer.attributes),
                           values=values, total_cpus=float(offer.cpus), total_mem_mb=float(offer.mem_mb),
                           total_disk_mb=float(offer.disk_mb), total_network_mbps=float(offer.network_mbps),
                           port_ranges=list(offer.ports))
        if old is None:
            self._seq += 1
            agent.seq = self._seq
        else:
            self._unindex(old)
            agent.seq, agent.disabled, agent.exclusive_workers = old.seq, old.disabled, old.exclusive_workers
            agent.workers, agent.used_ports = old.workers, old.used_ports
            for worker in agent.workers.values():
                worker.agent = agent
        agent.free_cpus = agent.total_cpus - sum(w.cpus for w in agent.workers.values())
        agent.free_mem_mb = agent.total_mem_mb - sum(w.mem_mb for w in agent.workers.values())
        agent.free_disk_mb = agent.total_disk_mb - sum(w.disk_mb for w in agent.workers.values())
        agent.free_network_mbps = agent.total_network_mbps - sum(w.network_mbps for w in agent.workers.values())
        capacity = sum(end - begin + 1 for begin, end in agent.port_ranges)
        agent.free_port_count = capacity - sum(1 for p in agent.used_ports if agent.in_ranges(p))
        self._agents[agent.agent_id] = agent
        self._index(agent)
        self._agents_changed()
        return agent

    def remove_agent(self, agent_id: str) -> list[str]:
        """Forget an agent and its placements; returns the keys of the workers that were
        on it (empty for an unknown agent)."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return []
        self._unindex(agent)
        keys = list(agent.workers)
        for key in keys:
            self._forget(self._workers.pop(key))
        self._agents_changed()
        return keys

    def disable_agent(self, agent_id: str) -> bool:
        """Stop placing new workers on an agent (those running stay). False if unknown."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return False
        agent.disabled = True
        self._unindex(agent)
        self.version += 1
        return True

    def enable_agent(self, agent_id: str) -> bool:
        """Let a disabled agent take new workers again. False if unknown."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return False
        agent.disabled = False
        self._index(agent)
        self.version += 1
        return True

    # -- placements -----------------------------------------------------------------------

    def assign(self, request: WorkerRequest, agent_id: str, ports: list[int]) -> Assignment:
        """Record ``request`` as placed on ``agent_id`` with ``ports``.

        The caller (the matcher) has checked that it fits; this only refuses what would
        corrupt the record: an unknown agent, a worker already placed, a port in use.
        """
        agent = self._agents.get(agent_id)
        if agent is None:
            raise KeyError(f"unknown agent {agent_id!r}")
        if request.worker_key in self._workers:
            raise ValueError(f"worker {request.worker_key} is already placed on "
                             f"{self._workers[request.worker_key].agent.agent_id}")
        taken = [p for p in ports if p in agent.used_ports]
        if taken:
            raise ValueError(f"ports {taken} are already in use on agent {agent_id}")
        self._record(request, agent, list(ports))
        return Assignment(request.worker_key, agent.agent_id, agent.hostname, list(ports))

    def restore(self, worker_key: str, request: WorkerRequest, agent_id: str, ports: list[int]) -> Assignment:
        """Account for a worker already running on ``agent_id`` (re-registered after a
        master restart).  Unlike :meth:`assign` it trusts the agent: it may over-commit,
        and a worker already recorded elsewhere is moved here."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise KeyError(f"unknown agent {agent_id!r}")
        self.release(worker_key)
        if request.worker_key != worker_key:
            request = replace(request, worker_key=worker_key)
        self._record(request, agent, list(ports))
        return Assignment(worker_key, agent.agent_id, agent.hostname, list(ports))

    def release(self, worker_key: str) -> bool:
        """Free a worker's resources and ports. False (and nothing changes) if unknown."""
        worker = self._workers.pop(worker_key, None)
        if worker is None:
            return False
        agent = worker.agent
        self._unindex(agent)
        del agent.workers[worker_key]
        agent.free_cpus += worker.cpus
        agent.free_mem_mb += worker.mem_mb
        agent.free_disk_mb += worker.disk_mb
        agent.free_network_mbps += worker.network_mbps
        for port in worker.ports:
            agent.used_ports.discard(port)
            if agent.in_ranges(port):
                agent.free_port_count += 1
        if worker.exclusive:
            agent.exclusive_workers -= 1
        self._forget(worker)
        self._index(agent)
        self.version += 1
        return True

    def _record(self, request: WorkerRequest, agent: AgentState, ports: list[int]) -> None:
        worker = PlacedWorker(request.worker_key, request.job_id, request.stage, agent, request.cpus,
                              request.mem_mb, request.disk_mb, request.network_mbps, ports, request.exclusive)
        # Out of the index while its sort key (free cpus) changes, back in afterwards.
        self._unindex(agent)
        agent.workers[worker.worker_key] = worker
        agent.free_cpus -= worker.cpus
        agent.free_mem_mb -= worker.mem_mb
        agent.free_disk_mb -= worker.disk_mb
        agent.free_network_mbps -= worker.network_mbps
        if ports:
            used = agent.used_ports
            for port in ports:
                if port not in used:
                    used.add(port)
                    if agent.in_ranges(port):
                        agent.free_port_count -= 1
        if worker.exclusive:
            agent.exclusive_workers += 1
        self._workers[worker.worker_key] = worker
        job = self._job_workers.get(worker.job_id)
        if job is None:
            job = self._job_workers[worker.job_id] = {}
        job[worker.worker_key] = worker
        counters = self._value_counts.get(worker.job_id)
        if counters:
            values = agent.values
            for (stage, attribute), counts in counters.items():
                if stage is None or stage == worker.stage:
                    counts.add(values.get(attribute), 1)
        self._index(agent)
        self.version += 1

    def _forget(self, worker: PlacedWorker) -> None:
        """Drop ``worker`` from the per-job records and counters."""
        job = self._job_workers.get(worker.job_id)
        if job is not None:
            job.pop(worker.worker_key, None)
            if not job:
                del self._job_workers[worker.job_id]
                self._value_counts.pop(worker.job_id, None)
                return
        counters = self._value_counts.get(worker.job_id)
        if counters:
            values = worker.agent.values
            for (stage, attribute), counts in counters.items():
                if stage is None or stage == worker.stage:
                    counts.add(values.get(attribute), -1)

    # -- what the matcher and constraints read ----------------------------------------------

    def pick_ports(self, agent: AgentState, count: int) -> list[int]:
        """The ``count`` lowest free ports from ``agent``'s offered ranges (not reserved
        until :meth:`assign`); fewer if the agent has not enough."""
        picked: list[int] = []
        if count <= 0:
            return picked
        used = agent.used_ports
        for begin, end in agent.port_ranges:
            for port in range(begin, end + 1):
                if port not in used:
                    picked.append(port)
                    if len(picked) == count:
                        return picked
        return picked

    def candidates(self, min_cpus: float) -> Iterator[tuple]:
        """``(free_cpus, idle group, (hostname, agent_id), agent)`` for every agent taking
        placements with at least ``min_cpus`` free, in the index's order (fewest free cpus
        first; see the module docstring).  The idle group is ``()`` for an agent with some
        resources in use.  Do not change the pool while iterating."""
        index = self._by_free_cpus
        return index.islice(index.bisect_left((min_cpus - EPSILON,)))

    def after_idle_group(self, entry: tuple) -> Iterator[tuple]:
        """The :meth:`candidates` that follow every idle agent of ``entry``'s group (the
        idle agents with the same free cpus and totals as ``entry``'s)."""
        index = self._by_free_cpus
        return index.islice(index.bisect_left((entry[0], entry[1] + (math.inf,))))

    def rest_of_idle_group(self, entry: tuple) -> Iterator[AgentState]:
        """The idle agents of ``entry``'s group that follow it in the index (``entry``
        itself may have left the index since)."""
        index = self._by_free_cpus
        for free_cpus, group, _, agent in index.islice(index.bisect_right(entry[:3])):
            if free_cpus != entry[0] or group != entry[1]:
                return
            yield agent

    def count_below(self, min_cpus: float) -> int:
        """How many agents taking placements have less than ``min_cpus`` free."""
        return self._by_free_cpus.bisect_left((min_cpus - EPSILON,))

    def held_back(self) -> list[AgentState]:
        """Agents taking no new placements: disabled, or held by an exclusive worker."""
        if len(self._by_free_cpus) == len(self._agents):
            return []
        return [a for a in self._agents.values() if a.index_entry is None]

    def value_counts(self, job_id: str, stage: int | None, attribute: str) -> ValueCounts:
        """Live instances of ``job_id`` (of one ``stage``, or all stages for ``None``) per
        value of ``attribute``; the same object keeps updating as workers come and go."""
        counters = self._value_counts.setdefault(job_id, {})
        counts = counters.get((stage, attribute))
        if counts is None:
            counts = counters[(stage, attribute)] = ValueCounts()
            for worker in self._job_workers.get(job_id, {}).values():
                if stage is None or stage == worker.stage:
                    counts.add(worker.agent.values.get(attribute), 1)
        return counts

    def attribute_values(self, attribute: str) -> frozenset:
        """The distinct values of ``attribute`` among registered agents."""
        values = self._attribute_values.get(attribute)
        if values is None:
            values = frozenset(v for a in self._agents.values() if (v := a.values.get(attribute)) is not None)
            self._attribute_values[attribute] = values
        return values

    def agent(self, agent_id: str) -> AgentState | None:
        """The agent with this id, or None."""
        return self._agents.get(agent_id)

    def agents(self) -> list[AgentState]:
        """Every registered agent, in registration order."""
        return list(self._agents.values())

    def placement(self, worker_key: str) -> Assignment | None:
        """Where a worker is placed, or None if the pool does not account for it."""
        worker = self._workers.get(worker_key)
        if worker is None:
            return None
        return Assignment(worker_key, worker.agent.agent_id, worker.agent.hostname, list(worker.ports))

    def free(self, agent_id: str) -> dict:
        """What is free on an agent: cpus, memMB, diskMB, networkMbps, ports (a count)."""
        a = self._agents[agent_id]
        return {"cpus": a.free_cpus, "memMB": a.free_mem_mb, "diskMB": a.free_disk_mb,
                "networkMbps": a.free_network_mbps, "ports": a.free_port_count}

    def used_ports(self, agent_id: str) -> list[int]:
        """The ports in use on an agent, ascending."""
        return sorted(self._agents[agent_id].used_ports)

    def __contains__(self, worker_key: object) -> bool:
        return worker_key in self._workers

    def __len__(self) -> int:
        return len(self._agents)

    def snapshot(self) -> list[dict]:
        """JSON-able state of every agent, for the API: ``agentId``, ``hostname``,
        ``disabled``, ``attributes``, ``total`` and ``used`` (cpus, memMB, diskMB,
        networkMbps; ports as ranges / as a list), ``workers`` (sorted keys)."""
        out = []
        for a in self._agents.values():
            out.append({
                "agentId": a.agent_id, "hostname": a.hostname, "disabled": a.disabled,
                "attributes": dict(a.attributes),
                "total": {"cpus": a.total_cpus, "memMB": a.total_mem_mb, "diskMB": a.total_disk_mb,
                          "networkMbps": a.total_network_mbps, "ports": [[b, e] for b, e in a.port_ranges]},
                "used": {"cpus": round(a.used_cpus, 6), "memMB": round(a.used_mem_mb, 6),
                         "diskMB": round(a.used_disk_mb, 6), "networkMbps": round(a.used_network_mbps, 6),
                         "ports": sorted(a.used_ports)},
                "workers": sorted(a.workers),
            })
        return out

    # -- index ----------------------------------------------------------------------------

    def _index(self, agent: AgentState) -> None:
        if agent.index_entry is None and not agent.disabled and not agent.exclusive_workers \
                and self._agents.get(agent.agent_id) is agent:
            # Idle here means all its cpus, memory and network free (exactly: float drift
            # left by releases would score differently), so its group, its totals, is
            # all a resource-only fitness reads (free cpus are the entry's first field).
            idle = (agent.free_cpus == agent.total_cpus
                    and agent.free_mem_mb == agent.total_mem_mb
                    and agent.free_network_mbps == agent.total_network_mbps)
            group = (agent.total_mem_mb, agent.total_network_mbps) if idle else ()
            agent.index_entry = (agent.free_cpus, group, (agent.hostname, agent.agent_id), agent)
            agent.shape = (agent.free_cpus, agent.total_cpus, agent.free_mem_mb, agent.total_mem_mb,
                           agent.free_network_mbps, agent.total_network_mbps)
            self._by_free_cpus.add(agent.index_entry)

    def _unindex(self, agent: AgentState) -> None:
        if agent.index_entry is not None:
            self._by_free_cpus.remove(agent.index_entry)
            agent.index_entry = None

    def _agents_changed(self) -> None:
        self.version += 1
        # Attribute values may have changed: counts keyed by them are rebuilt on next use.
        self._value_counts.clear()
        self._attribute_values.clear()
