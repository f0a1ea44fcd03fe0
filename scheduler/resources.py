"""The scheduler's vocabulary: what an agent offers, what a worker asks for, where it went.

Offers are in Mesos' shape whatever produces them (embedded local agents or Mesos), so
the matcher never needs to know which resource manager is underneath.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.constraints import Constraint, ExclusiveHost, parse_constraint


@dataclass
class AgentOffer:
    """Everything one agent puts up for placement, in Mesos' offer shape.

    ``ports`` are inclusive ``(begin, end)`` ranges; ``attributes`` are free-form
    string pairs (``zone``, ``instance_type``, ...) that constraints can test.
    """

    agent_id: str
    hostname: str
    cpus: float
    mem_mb: float
    disk_mb: float = 0.0
    network_mbps: float = 0.0
    ports: list[tuple[int, int]] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Offers arrive from JSON and actor messages, where ranges are lists; a bad range
        # is refused here rather than discovered while allocating ports.
        ranges = []
        for r in self.ports:
            begin, end = (int(v) for v in r)
            if begin > end or begin < 0:
                raise ValueError(f"agent {self.agent_id}: bad port range {list(r)}")
            ranges.append((begin, end))
        self.ports = ranges
        self.attributes = {str(k): str(v) for k, v in self.attributes.items()}


@dataclass
class WorkerRequest:
    """One worker waiting for a place: its resources and its placement constraints.

    ``worker_key`` is unique per worker (e.g. ``"myjob-1/w3"``).  Constraints may be
    given as specs in job-definition vocabulary (``"UniqueHost"``, ``["zone",
    "GROUP_BY"]``) or as parsed :class:`Constraint` objects; specs are parsed here, so
    a bad spec raises ``ValueError`` when the request is built.
    """

    worker_key: str
    job_id: str
    stage: int
    cpus: float
    mem_mb: float
    disk_mb: float = 0.0
    network_mbps: float = 0.0
    num_ports: int = 0
    hard_constraints: list = field(default_factory=list)
    soft_constraints: list = field(default_factory=list)
    # True when a hard ExclusiveHost constraint asks for an agent of its own.
    exclusive: bool = field(init=False, default=False)
    # The resources asked for: (cpus, mem_mb, disk_mb, network_mbps, num_ports).
    shape: tuple = field(init=False, repr=False, compare=False, default=())
    # Requests with equal keys are interchangeable to the matcher, which places them
    # as one group: same job/stage (constraints count per job), resources, constraints.
    group_key: tuple = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        self.hard_constraints = [parse_constraint(c) for c in self.hard_constraints]
        self.soft_constraints = [parse_constraint(c) for c in self.soft_constraints]
        self.num_ports = int(self.num_ports)
        for name in ("cpus", "mem_mb", "disk_mb", "network_mbps"):
            value = float(getattr(self, name))
            if value < 0:
                raise ValueError(f"worker {self.worker_key}: {name} must not be negative, got {value:g}")
            setattr(self, name, value)
        if self.num_ports < 0:
            raise ValueError(f"worker {self.worker_key}: num_ports must not be negative")
        self.exclusive = any(isinstance(c, ExclusiveHost) for c in self.hard_constraints)
        self.shape = (self.cpus, self.mem_mb, self.disk_mb, self.network_mbps, self.num_ports)
        self.group_key = (self.job_id, self.stage, self.shape, tuple(self.hard_constraints),
                          tuple(self.soft_constraints))


@dataclass
class Assignment:
    """Where a worker was placed: the agent, its hostname and the concrete ports."""

    worker_key: str
    agent_id: str
    hostname: str
    ports: list[int]


__all__ = ["AgentOffer", "WorkerRequest", "Assignment", "Constraint"]
