"""Fitness calculators: how well a request fits an agent, from 0 (does not fit) to 1.

Bin packing, as Fenzo's built-in calculators: the fitness is the share of the agent's
resource that would be in use after placing the request, so the fuller an agent ends
up, the higher it scores and the more agents stay empty for large workers.  The
matcher's default, :func:`balanced_bin_packing`, takes the least-used of cpus and
memory, so that no agent fills one of them while the other stays idle.

A calculator is any ``fitness(request, agent) -> float`` where ``request`` is a
:class:`~scheduler.resources.WorkerRequest` and ``agent`` an
:class:`~scheduler.agent_pool.AgentState`.
"""
from __future__ import annotations

from collections.abc import Callable

from scheduler.agent_pool import AgentState
from scheduler.resources import WorkerRequest

Fitness = Callable[[WorkerRequest, AgentState], float]

_SLACK = 1e-9  # float sums drift (0.1 + 0.2 ...); do not call an exact fit a miss
_LEAST = 1e-6  # the fitness of a request that fits but packs nothing


def _packed(need: float, free: float, total: float) -> float:
    """Share of ``total`` used after taking ``need`` out of ``free``; 0 if it does not fit."""
    if need > free + _SLACK:
        return 0.0
    if total <= 0:
        # Nothing offered and nothing asked: this resource says nothing about packing.
        return 1.0
    share = (total - free + need) / total
    # 0 is reserved for "does not fit": a request for nothing on an idle agent fits.
    return 1.0 if share > 1.0 else share if share > _LEAST else _LEAST


def cpu_bin_packing(request: WorkerRequest, agent: AgentState) -> float:
    """Share of the agent's cpus in use after placing; 0 if the cpus do not fit."""
    return _packed(request.cpus, agent.free_cpus, agent.total_cpus)


def memory_bin_packing(request: WorkerRequest, agent: AgentState) -> float:
    """Share of the agent's memory in use after placing; 0 if the memory does not fit."""
    return _packed(request.mem_mb, agent.free_mem_mb, agent.total_mem_mb)


def network_bin_packing(request: WorkerRequest, agent: AgentState) -> float:
    """Share of the agent's network bandwidth in use after placing; 0 if it does not fit."""
    return _packed(request.network_mbps, agent.free_network_mbps, agent.total_network_mbps)


def cpu_mem_network_bin_packing(request: WorkerRequest, agent: AgentState) -> float:
    """The average of cpu, memory and network bin packing; 0 if any does not fit.

    Network counts only for requests that ask for bandwidth: most workers ask for none,
    and an agent's idle network would otherwise drag every score down by a third
    without telling one agent from another.
    """
    cpu = _packed(request.cpus, agent.free_cpus, agent.total_cpus)
    mem = _packed(request.mem_mb, agent.free_mem_mb, agent.total_mem_mb)
    if not cpu or not mem:
        return 0.0
    if request.network_mbps <= 0:
        return (cpu + mem) / 2
    network = _packed(request.network_mbps, agent.free_network_mbps, agent.total_network_mbps)
    return (cpu + mem + network) / 3 if network else 0.0


def balanced_bin_packing(request: WorkerRequest, agent: AgentState) -> float:
    """The share of the agent's least-used resource, of cpus and memory, after placing
    (averaged with the network share when the request asks for bandwidth, as in
    :func:`cpu_mem_network_bin_packing`); 0 if any does not fit.  The matcher's default.

    Why not the plain average: on agents of mixed shapes (2, 4 and 8 GB per cpu, as
    AWS' c5, m5 and r5) it cannot tell a placement that fills an agent evenly from one
    that fills its memory and leaves its cpus idle, as both raise the average alike;
    but an agent with its memory full strands its free cpus, since no later worker can
    use them.  The smaller share is the average less half the gap between the two
    (``min(c, m) == (c + m) / 2 - |c - m| / 2``): it still rewards fuller agents, as
    Fenzo's bin packers do, and penalises lopsided use, as Kubernetes' balanced
    allocation does.  A memory-heavy worker thus scores best where memory is left over
    and a cpu-heavy one where cpus are, so each agent's scarce resource is kept for
    the workers that fit its shape.  On an idle agent the score is the request's share
    of the resource it uses least of there, so the smaller the idle agent, the higher.
    """
    cpu = _packed(request.cpus, agent.free_cpus, agent.total_cpus)
    mem = _packed(request.mem_mb, agent.free_mem_mb, agent.total_mem_mb)
    if not cpu or not mem:
        return 0.0
    least = cpu if cpu < mem else mem
    if request.network_mbps <= 0:
        return least
    network = _packed(request.network_mbps, agent.free_network_mbps, agent.total_network_mbps)
    return (2 * least + network) / 3 if network else 0.0


# The calculators above read only an agent's resource totals and free amounts, so two
# agents equal in those score alike (the matcher uses that to skip duplicates).
RESOURCE_FITNESS: set[Fitness] = {cpu_bin_packing, memory_bin_packing, network_bin_packing,
                                  cpu_mem_network_bin_packing, balanced_bin_packing}


def average_of(*calculators: Fitness) -> Fitness:
    """A calculator averaging ``calculators``; 0 as soon as one of them says 0."""
    if not calculators:
        raise ValueError("average_of needs at least one calculator")

    def average(request: WorkerRequest, agent: AgentState) -> float:
        total = 0.0
        for calculator in calculators:
            value = calculator(request, agent)
            if value <= 0:
                return 0.0
            total += value
        return total / len(calculators)
    average.__doc__ = "Average of " + ", ".join(getattr(c, "__name__", repr(c)) for c in calculators)
    if all(c in RESOURCE_FITNESS for c in calculators):
        RESOURCE_FITNESS.add(average)
    return average
