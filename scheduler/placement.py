"""The scheduler actor's view of placement: agents' offers in, assignments out.

A thin bridge between the actor messages (``AgentOfferInfo``, ``WorkerSpec``) and the
matcher's own types, so the actor never handles constraints or fitness itself.  It
keeps the reasons each still-pending worker could not be placed in the last round.
"""
from __future__ import annotations

from scheduler.agent_pool import AgentPool
from scheduler.matcher import Matcher
from scheduler.resources import AgentOffer, Assignment, WorkerRequest


def to_offer(info) -> AgentOffer:
    """The matcher's offer from an agent's AgentOfferInfo."""
    return AgentOffer(agent_id=info.agent_id, hostname=info.hostname, cpus=info.cpus, mem_mb=info.mem_mb,
                      disk_mb=info.disk_mb, network_mbps=info.network_mbps,
                      ports=[tuple(r) for r in info.ports], attributes=dict(info.attributes))


def to_request(spec) -> WorkerRequest:
    """The matcher's request from a WorkerSpec (constraints parsed here; a bad one
    raises ValueError)."""
    return WorkerRequest(
        worker_key=spec.worker_key, job_id=spec.job_id, stage=spec.stage, cpus=spec.cpus,
        mem_mb=spec.mem_mb, disk_mb=spec.disk_mb, network_mbps=spec.network_mbps,
        num_ports=spec.num_ports, hard_constraints=list(spec.hard_constraints),
        soft_constraints=list(spec.soft_constraints))


class Placement:
    """Agents, what runs on them, and one matcher round at a time."""

    def __init__(self, matcher: Matcher | None = None):
        self.pool = AgentPool()
        self.matcher = matcher or Matcher()
        self.pending_reasons: dict[str, list[str]] = {}
        # Requests built once per pending worker: parsing constraints every round
        # would cost more than matching them.
        self._requests: dict[str, WorkerRequest] = {}

    def add_agent(self, info) -> None:
        """Register an agent, or update a known one (its workers stay accounted for)."""
        self.pool.add_agent(to_offer(info))

    def remove_agent(self, agent_id: str) -> list[str]:
        """Forget an agent; returns the keys of the workers that were on it."""
        return self.pool.remove_agent(agent_id)

    def disable_agent(self, agent_id: str) -> bool:
        """No new workers on this agent (running ones stay). False if unknown."""
        return self.pool.disable_agent(agent_id)

    def enable_agent(self, agent_id: str) -> bool:
        """Let a disabled agent take new workers again. False if unknown."""
        return self.pool.enable_agent(agent_id)

    def restore(self, spec) -> None:
        """Account for a worker an agent reports already running (after a master restart)."""
        self.pool.restore(spec.worker_key, to_request(spec), spec.agent_id, list(spec.ports))

    def release(self, worker_key: str) -> None:
        """Free a worker's resources and ports (a no-op for an unknown key)."""
        self._requests.pop(worker_key, None)
        self.pending_reasons.pop(worker_key, None)
        self.pool.release(worker_key)

    def place(self, specs: list) -> list[Assignment]:
        """One matcher round over ``specs``; records why the unplaced ones wait."""
        requests, invalid = [], {}
        known = {}
        for spec in specs:
            request = self._requests.get(spec.worker_key)
            if request is None:
                try:
                    request = to_request(spec)
                except ValueError as exc:  # definitions are validated on submit; be safe anyway
                    invalid[spec.worker_key] = [f"invalid worker request: {exc}"]
                    continue
            known[spec.worker_key] = request
            requests.append(request)
        self._requests = known
        result = self.matcher.schedule_once(requests, self.pool)
        for a in result.assignments:
            self._requests.pop(a.worker_key, None)
        self.pending_reasons = {**result.pending, **invalid}
        return result.assignments

    def snapshot(self) -> list[dict]:
        """Every agent as JSON-able dicts (see AgentPool.snapshot)."""
        return self.pool.snapshot()
