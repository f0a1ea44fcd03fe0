"""The scheduler actor's view of placement: agents' offers in, assignments out.

A thin bridge between the actor messages (``AgentOfferInfo``, ``WorkerSpec``) and the
matcher's own types, so the actor never handles constraints or fitness itself.  It
keeps the reasons each still-pending worker could not be placed in the last round.
"""
from __future__ import annotations

from scheduler.agent_pool import AgentPool
from scheduler.constraints import parse_constraint
from scheduler.matcher import Matcher
from scheduler.resources import AgentOffer, Assignment, WorkerRequest


def to_offer(info) -> AgentOffer:
    """The matcher's offer from an agent's AgentOfferInfo."""
    return AgentOffer(agent_id=info.agent_id, hostname=info.hostname, cpus=info.cpus, mem_mb=info.mem_mb,
                      disk_mb=info.disk_mb, network_mbps=info.network_mbps,
                      ports=[tuple(r) for r in info.ports], attributes=dict(info.attributes))


def to_request(spec) -> WorkerRequest:
    """The matcher's request from a WorkerSpec (constraints parsed here)."""
    return WorkerRequest(
        worker_key=spec.worker_key, job_id=spec.job_id, stage=spec.stage, cpus=spec.cpus,
        mem_mb=spec.mem_mb, disk_mb=spec.disk_mb, network_mbps=spec.network_mbps,
        num_ports=spec.num_ports,
        hard_constraints=[parse_constraint(c) for c in spec.hard_constraints],
        soft_constraints=[parse_constraint(c) for c in spec.soft_constraints])


class Placement:
    """Agents, what runs on them, and one matcher round at a time."""

    def __init__(self, matcher: Matcher | None = None):
        self.pool = AgentPool()
        self.matcher = matcher or Matcher()
        self.pending_reasons: dict[str, list[str]] = {}

    def add_agent(self, info) -> None:
        self.pool.add_agent(to_offer(info))

    def remove_agent(self, agent_id: str) -> list[str]:
        """Forget an agent; returns the keys of the workers that were on it."""
        return self.pool.remove_agent(agent_id)

    def restore(self, spec) -> None:
        """Account for a worker an agent reports already running (after a master restart)."""
        self.pool.restore(spec.worker_key, to_request(spec), spec.agent_id, list(spec.ports))

    def release(self, worker_key: str) -> None:
        self.pool.release(worker_key)

    def place(self, specs: list) -> list[Assignment]:
        """One matcher round over ``specs``; records why the unplaced ones wait."""
        result = self.matcher.schedule_once([to_request(s) for s in specs], self.pool)
        self.pending_reasons = dict(result.pending)
        return result.assignments

    def snapshot(self) -> list[dict]:
        return self.pool.snapshot()
