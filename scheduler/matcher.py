"""The Fenzo-style matcher: one scheduling round places what it can and explains the rest.

Per request, agents are tried as Fenzo's ``scheduleOnce`` tries hosts: exclusive-host
and hard constraints filter, the resources must fit (cpus, memory, disk, network, enough
free ports), a fitness calculator scores the fit (0 = does not fit), soft constraints
score the preference, and the combination ``(1 - soft_weight) * fitness + soft_weight *
soft`` decides.  The first agent scoring at least ``good_enough`` wins; otherwise the best
one seen.

Speed, in pure Python (10,000 workers onto 1,000 agents in well under a second):

* identical requests (same job, stage, resources and constraints) are placed as one
  group: constraints are bound once per group, and once one member finds no agent the
  rest are pending for the same reasons without another search;
* agents come from the pool's index sorted by free cpus: every agent with too few cpus
  is skipped by one bisection, and the fullest fitting agents, which bin packing scores
  highest, come first, so the first good-enough one is usually among the first few;
* when none is good enough the search still stops after ``search_limit`` agents that
  fit: further agents have more free cpus, so rarely pack better (Fenzo evaluates every
  host, but on many threads);
* reasons for pending requests are worked out after the round, once per distinct
  request, from the state the round left, which is what the next round starts from.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.agent_pool import EPSILON, AgentPool, AgentState
from scheduler.fitness import Fitness, cpu_mem_network_bin_packing
from scheduler.resources import Assignment, WorkerRequest

ROOM_AFTER_ROUND = "had room (the next round will place it)"


@dataclass
class ScheduleResult:
    """The outcome of one round: what was placed, and for each worker left pending the
    aggregated reasons (most frequent first), e.g. ``["3 agents lacked memory"]``."""

    assignments: list[Assignment] = field(default_factory=list)
    pending: dict[str, list[str]] = field(default_factory=dict)


class Matcher:
    """Places worker requests onto a pool's agents (see the module docstring).

    ``fitness`` is a calculator from :mod:`scheduler.fitness`; ``good_enough`` the
    combined score that ends a request's search (Mantis used 0.63); ``soft_weight`` the
    share of the score given to soft constraints (a request without any scores 1 there);
    ``search_limit`` how many fitting agents to weigh before settling for the best.
    """

    def __init__(self, fitness: Fitness = cpu_mem_network_bin_packing, good_enough: float = 0.63,
                 soft_weight: float = 0.5, search_limit: int = 32):
        if not 0.0 <= good_enough <= 1.0:
            raise ValueError(f"good_enough must be within 0..1, got {good_enough}")
        if not 0.0 <= soft_weight <= 1.0:
            raise ValueError(f"soft_weight must be within 0..1, got {soft_weight}")
        if search_limit < 1:
            raise ValueError(f"search_limit must be at least 1, got {search_limit}")
        self.fitness = fitness
        self.good_enough = good_enough
        self.soft_weight = soft_weight
        self.search_limit = search_limit
        # Groups of the last round that no agent could take, with the pool version then
        # and their reasons: an unchanged pool needs neither a search nor an explanation.
        self._settled: dict[tuple, tuple[int, list[str]]] = {}
        self._settled_pool: AgentPool | None = None

    def schedule_once(self, requests: list[WorkerRequest], pool: AgentPool) -> ScheduleResult:
        """Place what fits of ``requests`` (in their order, identical ones together),
        recording each assignment in ``pool``; every other request gets its reasons.

        A request whose worker is already placed in the pool stays pending with that
        reason (release it first); a repeated worker key is considered once.
        """
        result = ScheduleResult()
        groups = self._group(requests, pool, result.pending)
        settled = self._settled if self._settled_pool is pool else {}
        unplaced: list[list[WorkerRequest]] = []
        for key, group in groups.items():
            if key in settled and settled[key][0] == pool.version:
                # Nothing has changed since a round found no room for this request.
                unplaced.append(group)
            else:
                self._place_group(group, pool, result.assignments, unplaced)
        self._explain_unplaced(unplaced, pool, settled, result.pending)
        return result

    @staticmethod
    def _group(requests: list[WorkerRequest], pool: AgentPool, pending: dict) -> dict[tuple, list[WorkerRequest]]:
        """Identical requests together, in order of first appearance."""
        groups: dict[tuple, list[WorkerRequest]] = {}
        seen: set[str] = set()
        for request in requests:
            if request.worker_key in seen:
                continue
            seen.add(request.worker_key)
            where = pool.placement(request.worker_key)  # None unless the pool holds it
            if where is not None:
                pending[request.worker_key] = [f"already placed on agent {where.agent_id}; release it first"]
                continue
            group = groups.get(request.group_key)
            if group is None:
                groups[request.group_key] = [request]
            else:
                group.append(request)
        return groups

    def _place_group(self, group: list[WorkerRequest], pool: AgentPool, assignments: list,
                     unplaced: list) -> None:
        first = group[0]
        checks = [c for c in (h.bind(first, pool) for h in first.hard_constraints) if c is not None]
        scores = [s for s in (c.bind_score(first, pool) for c in first.soft_constraints) if s is not None]
        for i, request in enumerate(group):
            agent = self._search(request, pool, checks, scores)
            if agent is None:
                # Nothing changed since this search, so its identical successors fail too.
                unplaced.append(group[i:])
                return
            ports = pool.pick_ports(agent, request.num_ports)
            assignments.append(pool.assign(request, agent.agent_id, ports))

    def _explain_unplaced(self, unplaced: list, pool: AgentPool, settled: dict, pending: dict) -> None:
        """Reasons for every unplaced request, from the state this round leaves (which the
        next round starts from); remembers the groups no agent can take for next time."""
        explained: dict[tuple, tuple[list[str], bool]] = {}
        self._settled, self._settled_pool = {}, pool
        for rest in unplaced:
            first = rest[0]
            # Unless a hard constraint counts the job's instances, the reasons do not
            # depend on the job: requests of many jobs share one explanation.
            if any(c.counts_instances for c in first.hard_constraints):
                key = first.group_key
            else:
                key = (first.shape, tuple(first.hard_constraints))
            known = explained.get(key)
            if known is None:
                cached = settled.get(first.group_key)
                if cached is not None and cached[0] == pool.version:
                    known = (cached[1], False)
                else:
                    known = self._explain(first, pool)
                explained[key] = known
            reasons, room_somewhere = known
            if not room_somewhere:
                self._settled[first.group_key] = (pool.version, reasons)
            for request in rest:
                pending[request.worker_key] = list(reasons)

    def _search(self, request: WorkerRequest, pool: AgentPool, checks: list, scores: list) -> AgentState | None:
        """The agent to place ``request`` on, or None.  The hot loop: keep it lean."""
        mem = request.mem_mb - EPSILON
        disk = request.disk_mb - EPSILON
        network = request.network_mbps - EPSILON
        ports = request.num_ports
        exclusive = request.exclusive
        fitness = self.fitness
        good_enough = self.good_enough
        soft_weight = self.soft_weight
        fitness_weight = 1.0 - soft_weight
        soft_count = len(scores)
        search_limit = self.search_limit
        best, best_score, weighed = None, -1.0, 0
        for _, _, agent in pool.candidates(request.cpus):
            if (agent.free_mem_mb < mem or agent.free_disk_mb < disk or agent.free_network_mbps < network
                    or agent.free_port_count < ports or (exclusive and agent.workers)):
                continue
            if checks:
                rejected = False
                for check in checks:
                    if not check(agent):
                        rejected = True
                        break
                if rejected:
                    continue
            fit = fitness(request, agent)
            if fit <= 0.0:
                continue
            if soft_count:
                soft = 0.0
                for score in scores:
                    soft += score(agent)
                score_ = fitness_weight * fit + soft_weight * soft / soft_count
            else:
                # No preference to weigh scores 1 there, as in Fenzo.
                score_ = fitness_weight * fit + soft_weight
            if score_ >= good_enough:
                return agent
            if score_ > best_score:
                best, best_score = agent, score_
            weighed += 1
            if weighed >= search_limit:
                break
        return best

    def explain(self, request: WorkerRequest, pool: AgentPool) -> list[str]:
        """Why ``request`` cannot be placed in ``pool`` now: for every agent the first
        veto in Fenzo's order (disabled, exclusive host, hard constraints, resources,
        fitness), aggregated as ``"N agents <reason>"``, most frequent first."""
        return self._explain(request, pool)[0]

    def _explain(self, request: WorkerRequest, pool: AgentPool) -> tuple[list[str], bool]:
        """:meth:`explain`'s reasons, and whether some agent has room after all."""
        if not len(pool):
            return ["no agents registered"], False
        checks = [(c, c.bind(request, pool)) for c in request.hard_constraints]
        checks = [(c, check) for c, check in checks if check is not None]
        cpus, mem, disk = request.cpus - EPSILON, request.mem_mb - EPSILON, request.disk_mb - EPSILON
        network, ports, exclusive = request.network_mbps - EPSILON, request.num_ports, request.exclusive
        vetoes: dict[str, int] = {}
        if checks or exclusive:
            agents = pool.agents()
        else:
            # Only resources can veto: every agent the free-cpus index puts below the
            # request lacks cpus, so only the rest (and the held-back ones) need a look.
            agents = pool.held_back() + [agent for _, _, agent in pool.candidates(request.cpus)]
            lacking_cpus = pool.count_below(request.cpus)
            if lacking_cpus:
                vetoes["lacked cpus"] = lacking_cpus
        # Inlined: a round with many distinct pending requests pays this loop often.
        for agent in agents:
            if agent.disabled:
                veto = "disabled"
            elif agent.exclusive_workers:
                veto = "held an exclusive worker"
            elif exclusive and agent.workers:
                veto = "ran other workers (ExclusiveHost)"
            else:
                veto = None
                for constraint, check in checks:
                    if not check(agent):
                        veto = constraint.failure(agent)
                        break
                if veto is None:
                    if agent.free_cpus < cpus:
                        veto = "lacked cpus"
                    elif agent.free_mem_mb < mem:
                        veto = "lacked memory"
                    elif agent.free_disk_mb < disk:
                        veto = "lacked disk"
                    elif agent.free_network_mbps < network:
                        veto = "lacked network bandwidth"
                    elif agent.free_port_count < ports:
                        veto = "lacked ports"
                    elif self.fitness(request, agent) <= 0.0:
                        veto = "scored zero fitness"
                    else:
                        # Possible when later placements in the round loosened a
                        # constraint (GROUP_BY caps grow with the job's instances).
                        veto = ROOM_AFTER_ROUND
            assert veto is not None  # every branch above names a veto
            vetoes[veto] = vetoes.get(veto, 0) + 1
        reasons = [f"{n} agent{'' if n == 1 else 's'} {reason}"
                   for reason, n in sorted(vetoes.items(), key=lambda item: (-item[1], item[0]))]
        return reasons, ROOM_AFTER_ROUND in vetoes
