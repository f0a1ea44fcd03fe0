"""Small builders for scheduler tests: offers, requests and pools with test defaults."""
from __future__ import annotations

from scheduler import AgentOffer, AgentPool, WorkerRequest


def offer(agent_id: str, cpus: float = 4, mem_mb: float = 8192, disk_mb: float = 10_000,
          network_mbps: float = 1000, ports=((31000, 31009),), hostname: str | None = None,
          **attributes: str) -> AgentOffer:
    """An agent offer; the hostname defaults to ``<agent_id>.host``."""
    return AgentOffer(agent_id=agent_id, hostname=hostname or f"{agent_id}.host", cpus=cpus, mem_mb=mem_mb,
                      disk_mb=disk_mb, network_mbps=network_mbps, ports=list(ports), attributes=attributes)


def request(key: str, job: str = "job-1", stage: int = 1, cpus: float = 1, mem_mb: float = 1024,
            disk_mb: float = 0, network_mbps: float = 0, num_ports: int = 0, hard=(), soft=()) -> WorkerRequest:
    """A worker request with small defaults (1 cpu, 1 GB, no ports, no constraints)."""
    return WorkerRequest(worker_key=key, job_id=job, stage=stage, cpus=cpus, mem_mb=mem_mb, disk_mb=disk_mb,
                         network_mbps=network_mbps, num_ports=num_ports, hard_constraints=list(hard),
                         soft_constraints=list(soft))


def requests(count: int, job: str = "job-1", **kwargs) -> list[WorkerRequest]:
    """``count`` identical requests of one job, keyed ``<job>/w0``, ``<job>/w1`` ..."""
    return [request(f"{job}/w{i}", job=job, **kwargs) for i in range(count)]


def pool_of(*offers: AgentOffer) -> AgentPool:
    """A pool with these agents registered."""
    pool = AgentPool()
    for o in offers:
        pool.add_agent(o)
    return pool


def hosts_of(result) -> dict[str, str]:
    """worker key -> agent id of a round's assignments."""
    return {a.worker_key: a.agent_id for a in result.assignments}
