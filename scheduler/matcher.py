"""The Fenzo-style matcher: one scheduling round places what it can and explains the rest.

Requests are tried in the order given (the scheduler passes them in the order they were
submitted, across jobs, as Fenzo's queue does).  Per request, agents are tried as
Fenzo's ``scheduleOnce`` tries hosts: exclusive-host and hard constraints filter, the
resources must fit (cpus, memory, disk, network, enough free ports), a fitness
calculator scores the fit (0 = does not fit), soft constraints score the preference,
and the combination ``(1 - soft_weight) * fitness + soft_weight * soft`` decides.  The
first agent scoring at least ``good_enough`` wins (the only early stop, as in Fenzo);
otherwise every fitting agent is weighed and the best wins, ties going to the lowest
host name, so the same pool and requests always give the same placement.

Balancing rules (GROUP_BY without a number, ZoneBalance) come first: among the agents
that could take the worker, only those on the value holding the fewest of the job's
instances are considered, and the search stops early only on an agent at the lowest
level any value has (see :class:`scheduler.constraints.Balance`).

Speed, in pure Python (10,000 workers onto 1,000 agents in well under a second):

* consecutive identical requests (same job, stage, resources and constraints) are
  placed as one group: constraints are bound once per group, and once one member finds
  no agent the rest, and any later identical request of the round, are pending for the
  same reasons without another search;
* agents come from the pool's index sorted by free cpus: every agent with too few cpus
  is skipped by one bisection, and the fullest fitting agents, which bin packing scores
  highest, come first, so the first good-enough one is usually among the first few;
* a search that finds none good enough weighs every agent, but never two that must
  score alike: idle agents of one shape sit together in the index and the search jumps
  past the rest of them once one is weighed, agents with a shape already weighed are
  skipped, and the next identical request of a group re-scores only the agent the
  previous one took (a kept ranking) when nothing else can have changed;
* reasons for pending requests are worked out after the round, once per distinct
  request, from the state the round left, which is what the next round starts from.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from scheduler.agent_pool import EPSILON, AgentPool, AgentState
from scheduler.fitness import RESOURCE_FITNESS, Fitness, balanced_bin_packing
from scheduler.resources import Assignment, WorkerRequest

ROOM_AFTER_ROUND = "had room (the next round will place it)"


class _Ranking:
    """Every agent a full search weighed for a request, best first (score, then host
    name), none of them good enough.  Placing the request changes only its agent, so for
    the next identical request that agent alone is scored again: it wins if now good
    enough, otherwise the ranking's best does, exactly as a new full search would find."""

    def __init__(self, ranked: list, good_enough: float):
        heapq.heapify(ranked)
        self._heap = ranked  # (-score, hostname, agent id, agent)
        self._good_enough = good_enough
        # Entries of an agent scored again are stale: the current score per agent id.
        self._current = {entry[2]: entry[0] for entry in ranked}

    def add(self, agent: AgentState, score: float) -> None:
        """Rank ``agent``, which the search skipped, at ``score`` (not good enough)."""
        self._current[agent.agent_id] = -score
        heapq.heappush(self._heap, (-score, agent.hostname, agent.agent_id, agent))

    def after_placing_on(self, agent: AgentState, score: float) -> AgentState | None:
        """The agent for the next identical request, ``agent`` (the last one placed on)
        now scoring ``score`` (0 = cannot take it); None when no agent can."""
        if score >= self._good_enough:
            return agent
        heap, current = self._heap, self._current
        if score > 0.0:
            current[agent.agent_id] = -score
            heapq.heappush(heap, (-score, agent.hostname, agent.agent_id, agent))
        else:
            current.pop(agent.agent_id, None)
        while heap and current.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][3] if heap else None


@dataclass
class ScheduleResult:
    """The outcome of one round: what was placed, and for each worker left pending the
    aggregated reasons (most frequent first), e.g. ``["3 agents lacked memory"]``."""

    assignments: list[Assignment] = field(default_factory=list)
    pending: dict[str, list[str]] = field(default_factory=dict)


class Matcher:
    """Places worker requests onto a pool's agents (see the module docstring).

    ``fitness`` is a calculator from :mod:`scheduler.fitness`: by default the balanced
    bin packer, which keeps agents of mixed shapes from stranding one resource next to
    a full other (Fenzo's plain average is ``cpu_mem_network_bin_packing``);
    ``good_enough`` the combined score that ends a request's search (Mantis used 0.63);
    ``soft_weight`` the share of the score given to soft constraints (a request without
    any scores 1 there); ``search_limit``, when set, how many fitting agents to weigh
    before settling for the best seen: the policy this matcher used to have (32), kept
    so the scheduler benchmark can show what searching on gains; ``None`` (the default)
    searches like Fenzo.
    """

    def __init__(self, fitness: Fitness = balanced_bin_packing, good_enough: float = 0.63,
                 soft_weight: float = 0.5, search_limit: int | None = None):
        if not 0.0 <= good_enough <= 1.0:
            raise ValueError(f"good_enough must be within 0..1, got {good_enough}")
        if not 0.0 <= soft_weight <= 1.0:
            raise ValueError(f"soft_weight must be within 0..1, got {soft_weight}")
        if search_limit is not None and search_limit < 1:
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
        """Place what fits of ``requests`` in their order, recording each assignment in
        ``pool``; every other request gets its reasons.

        A request whose worker is already placed in the pool stays pending with that
        reason (release it first); a repeated worker key is considered once.
        """
        result = ScheduleResult()
        runs = self._runs(requests, pool, result.pending)
        settled = self._settled if self._settled_pool is pool else {}
        unplaced: list[list[WorkerRequest]] = []
        failed: set[tuple] = set()  # group keys that found no agent in this round
        for run in runs:
            key = run[0].group_key
            if key in failed or (key in settled and settled[key][0] == pool.version):
                # Nothing has changed since a search found no room for this request, or
                # the round has only taken room since: it would fail again.
                unplaced.append(run)
            elif not self._place_run(run, pool, result.assignments, unplaced):
                failed.add(key)
        self._explain_unplaced(unplaced, pool, settled, result.pending)
        return result

    @staticmethod
    def _runs(requests: list[WorkerRequest], pool: AgentPool, pending: dict) -> list[list[WorkerRequest]]:
        """The requests in their order, consecutive identical ones together."""
        runs: list[list[WorkerRequest]] = []
        seen: set[str] = set()
        for request in requests:
            if request.worker_key in seen:
                continue
            seen.add(request.worker_key)
            where = pool.placement(request.worker_key)  # None unless the pool holds it
            if where is not None:
                pending[request.worker_key] = [f"already placed on agent {where.agent_id}; release it first"]
                continue
            if runs and runs[-1][0].group_key == request.group_key:
                runs[-1].append(request)
            else:
                runs.append([request])
        return runs

    def _place_run(self, run: list[WorkerRequest], pool: AgentPool, assignments: list, unplaced: list) -> bool:
        """Place ``run``'s identical requests in order; False once one finds no agent."""
        first = run[0]
        checks = [c for c in (h.bind(first, pool) for h in first.hard_constraints) if c is not None]
        balances = [b for b in (h.bind_balance(first, pool) for h in first.hard_constraints) if b is not None]
        scores = [s for s in (c.bind_score(first, pool) for c in first.soft_constraints) if s is not None]
        # When placing a worker changes no score but its own agent's (no soft constraint,
        # no rule counting the job's instances, no agent of its own), a full search's
        # ranking stays right for the next identical request once that agent is re-scored.
        keep_ranking = (self.search_limit is None and not scores and not first.exclusive
                        and not any(c.counts_instances for c in first.hard_constraints))
        ranking: _Ranking | None = None
        agent: AgentState | None = None
        for i, request in enumerate(run):
            if ranking is not None and agent is not None:
                agent = ranking.after_placing_on(agent, self._score_alone(request, agent, checks))
            elif balances:
                agent = self._search_balanced(request, pool, checks, scores, balances)
            else:
                agent, ranking = self._search(request, pool, checks, scores, keep_ranking)
            if agent is None:
                # Nothing changed since this search, so its identical successors fail too.
                unplaced.append(run[i:])
                return False
            entry = agent.index_entry
            ports = pool.pick_ports(agent, request.num_ports)
            assignments.append(pool.assign(request, agent.agent_id, ports))
            if ranking is not None and entry is not None and entry[1]:
                # The search weighed only the first idle agent of this group: the next
                # one that can take the request now stands where this one stood.
                for other in pool.rest_of_idle_group(entry):
                    score = self._score_alone(request, other, checks)
                    if score > 0.0:
                        ranking.add(other, score)
                        break
        return True

    def _score_alone(self, request: WorkerRequest, agent: AgentState, checks: list) -> float:
        """``agent``'s combined score for a request without soft constraints, or 0 when
        it cannot take the request now."""
        if (agent.index_entry is None or agent.free_cpus < request.cpus - EPSILON
                or agent.free_mem_mb < request.mem_mb - EPSILON or agent.free_disk_mb < request.disk_mb - EPSILON
                or agent.free_network_mbps < request.network_mbps - EPSILON
                or agent.free_port_count < request.num_ports or not all(check(agent) for check in checks)):
            return 0.0
        fit = self.fitness(request, agent)
        return (1.0 - self.soft_weight) * fit + self.soft_weight if fit > 0.0 else 0.0

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

    def _search(self, request: WorkerRequest, pool: AgentPool, checks: list, scores: list,
                keep_ranking: bool = False) -> tuple[AgentState | None, _Ranking | None]:
        """The agent to place ``request`` on, or None; and, when ``keep_ranking`` and no
        agent was good enough, the ranking of every agent that could take it.  The hot
        loop: keep it lean."""
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
        search_limit = self.search_limit or len(pool) + 1
        # With a fitness of resources alone and no soft constraint, an agent whose totals
        # and free amounts (its ``shape``) equal those of one already weighed scores the
        # same and comes later (same free cpus, higher host name), so it cannot win: it
        # is skipped (only scored without the fitness when a ranking is kept).  Idle
        # agents of one shape are next to each other in the index: once one is weighed
        # the search jumps past the rest (a kept ranking gets the next one when this one
        # is taken).  On a fresh cluster of a few instance types a full search is cheap.
        # With soft constraints, an idle agent scoring the most any can there (1 each)
        # cannot be beaten by the rest of its group either: the search jumps there too.
        jumps = fitness in RESOURCE_FITNESS and self.search_limit is None
        seen: dict | None = {} if jumps and not soft_count else None
        ranked: list | None = [] if keep_ranking else None
        best: AgentState | None = None
        best_score, weighed, top = -1.0, 0, True
        segment: Iterator[tuple] | None = pool.candidates(request.cpus)
        while segment is not None:
            resume = None
            for entry in segment:
                agent = entry[3]
                if seen is not None and ranked is None and agent.shape in seen:
                    # The same score as an agent already weighed, ahead of this one.
                    continue
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
                if seen is not None:
                    score_ = seen.get(agent.shape, -1.0)
                    if score_ < 0.0:
                        fit = fitness(request, agent)
                        score_ = seen[agent.shape] = fitness_weight * fit + soft_weight if fit > 0.0 else 0.0
                    if score_ <= 0.0:
                        continue
                else:
                    fit = fitness(request, agent)
                    if fit <= 0.0:
                        continue
                    if soft_count:
                        soft = 0.0
                        for score in scores:
                            soft += score(agent)
                        score_ = fitness_weight * fit + soft_weight * soft / soft_count
                        top = soft >= soft_count
                    else:
                        # No preference to weigh scores 1 there, as in Fenzo.
                        score_ = fitness_weight * fit + soft_weight
                if score_ >= good_enough:
                    return agent, None
                if ranked is not None:
                    ranked.append((-score_, agent.hostname, agent.agent_id, agent))
                if score_ > best_score or (score_ == best_score and best is not None
                                           and agent.hostname < best.hostname):
                    best, best_score = agent, score_
                weighed += 1
                if weighed >= search_limit:
                    break
                if entry[1] and jumps and top:
                    # An idle agent: the rest of its group score no better and come later.
                    resume = entry
                    break
            segment = pool.after_idle_group(resume) if resume is not None else None
        return best, (_Ranking(ranked, good_enough) if ranked else None)

    def _search_balanced(self, request: WorkerRequest, pool: AgentPool, checks: list, scores: list,
                         balances: list) -> AgentState | None:
        """:meth:`_search` for a request with balancing rules: the agent with the lowest
        levels (in the rules' order), then the best score, then the lowest host name."""
        mem = request.mem_mb - EPSILON
        disk = request.disk_mb - EPSILON
        network = request.network_mbps - EPSILON
        ports = request.num_ports
        exclusive = request.exclusive
        fitness_weight = 1.0 - self.soft_weight
        floor = tuple(b.floor() for b in balances)
        search_limit = self.search_limit or len(pool) + 1
        # As in _search: equal levels, totals and free amounts score alike, and the later
        # agent (same free cpus, higher host name) cannot win; nor can the rest of an idle
        # agent's group once it is at the floor and scores the most it can.
        jumps = self.fitness in RESOURCE_FITNESS and self.search_limit is None
        seen: set | None = set() if jumps and not scores else None
        levels = [b.level for b in balances]
        single = levels[0] if len(levels) == 1 else None
        fitness, good_enough, soft_weight = self.fitness, self.good_enough, self.soft_weight
        soft_count = len(scores)
        best, best_key, weighed, top = None, None, 0, True
        segment: Iterator[tuple] | None = pool.candidates(request.cpus)
        while segment is not None:
            resume = None
            for entry in segment:
                agent = entry[3]
                if (agent.free_mem_mb < mem or agent.free_disk_mb < disk or agent.free_network_mbps < network
                        or agent.free_port_count < ports or (exclusive and agent.workers)):
                    continue
                level = (single(agent),) if single is not None else tuple(f(agent) for f in levels)
                if best_key is not None and level > best_key[0]:
                    continue  # a fuller value than the best agent's: it cannot win
                if checks:
                    rejected = False
                    for check in checks:
                        if not check(agent):
                            rejected = True
                            break
                    if rejected:
                        continue
                if seen is not None:
                    shape = (level, agent.shape)
                    if shape in seen:
                        continue
                    seen.add(shape)
                fit = fitness(request, agent)
                if fit <= 0.0:
                    continue
                if soft_count:
                    soft = 0.0
                    for score in scores:
                        soft += score(agent)
                    score_ = fitness_weight * fit + soft_weight * soft / soft_count
                    top = soft >= soft_count
                else:
                    score_ = fitness_weight * fit + soft_weight
                if score_ >= good_enough and level == floor:
                    return agent
                key = (level, -score_, agent.hostname)
                if best_key is None or key < best_key:
                    best, best_key = agent, key
                weighed += 1
                if weighed >= search_limit:
                    break
                if entry[1] and jumps and top and level == floor:
                    resume = entry
                    break
            segment = pool.after_idle_group(resume) if resume is not None else None
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
            agents = pool.held_back() + [entry[3] for entry in pool.candidates(request.cpus)]
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
                        # constraint (GROUP_BY n accepts a value again once the job
                        # holds n groups).
                        veto = ROOM_AFTER_ROUND
            assert veto is not None  # every branch above names a veto
            vetoes[veto] = vetoes.get(veto, 0) + 1
        reasons = [f"{n} agent{'' if n == 1 else 's'} {reason}"
                   for reason, n in sorted(vetoes.items(), key=lambda item: (-item[1], item[0]))]
        return reasons, ROOM_AFTER_ROUND in vetoes
