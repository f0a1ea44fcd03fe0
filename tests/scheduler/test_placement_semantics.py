"""Placement semantics where Marathon and Fenzo set the rule: GROUP_BY with and without a
number, a search that weighs every fitting agent until one is good enough, submission
order across jobs, IS on numbers, and host names breaking ties in fitness."""
from __future__ import annotations

from collections import Counter

import pytest

from actors.messages import AgentOfferInfo, WorkerSpec
from scheduler import Matcher, balanced_bin_packing, cpu_mem_network_bin_packing
from scheduler.placement_state import PlacementMachine
from tests.scheduler.builders import hosts_of, offer, pool_of, request, requests


def zones_of(result, pool) -> Counter:
    return Counter(pool.agent(a.agent_id).attributes["zone"] for a in result.assignments)


def one_agent_per_zone(cpus: float = 16, mem_mb: float = 65536):
    return pool_of(*(offer(f"{z}0", cpus=cpus, mem_mb=mem_mb, zone=z) for z in "abc"))


# -- GROUP_BY without a number: spread over the values that could take the worker --------

def test_group_by_spreads_over_the_zones_left_when_one_zones_agents_are_full():
    pool = one_agent_per_zone(cpus=4)
    pool.restore("other/w0", request("other/w0", job="other", cpus=4), "c0", [])  # zone c is full
    result = Matcher().schedule_once(requests(4, hard=[["zone", "GROUP_BY"]]), pool)
    # The full zone does not cap the others at ceil(n / 3): all four are placed, evenly.
    assert zones_of(result, pool) == Counter({"a": 2, "b": 2})
    assert result.pending == {}


def test_group_by_spreads_over_the_zones_left_when_one_zones_agent_is_disabled():
    pool = one_agent_per_zone(cpus=4)
    pool.disable_agent("c0")
    result = Matcher().schedule_once(requests(4, hard=[["zone", "GROUP_BY"]]), pool)
    assert zones_of(result, pool) == Counter({"a": 2, "b": 2})


def test_group_by_spreads_over_the_zones_left_when_one_zones_agent_is_draining():
    m = PlacementMachine(launch_confirm_s=5.0, orphan_grace_s=30.0, started_at=0.0)
    for zone in "abc":
        m.register_agent(AgentOfferInfo(agent_id=f"{zone}0", hostname=f"{zone}0.host", cpus=4, mem_mb=8192,
                                        disk_mb=1000, network_mbps=100, ports=[[31000, 31009]],
                                        attributes={"zone": zone}), f"addr-{zone}", [], [], now=0.0)
    m.set_agent("c0", "drain", "ops", now=0.0)
    for i in range(4):
        m.request(WorkerSpec(worker_key=f"job-1/w{i}", job_id="job-1", stage=1, index=i, number=i,
                             entry_point="m:job", parameters={}, cpus=1, mem_mb=512, disk_mb=10, network_mbps=1,
                             num_ports=1, hard_constraints=[["zone", "GROUP_BY"]]), "job-shard", now=1.0)
    m.place_round(now=1.0)
    placed = Counter(rec.agent_id for rec in m.placed.values())
    assert placed == Counter({"a0": 2, "b0": 2}) and not m.pending


def test_group_by_still_prefers_the_emptiest_zone_over_better_packing():
    pool = one_agent_per_zone()
    # Two of the job's instances already in a: a0 packs best, yet b and c come first.
    for i in range(2):
        pool.restore(f"job-1/r{i}", request(f"job-1/r{i}"), "a0", [])
    result = Matcher().schedule_once(requests(4, hard=[["zone", "GROUP_BY"]]), pool)
    assert zones_of(result, pool) == Counter({"b": 2, "c": 2})  # ending a2 b2 c2


def test_group_by_leaves_a_worker_pending_only_when_no_zone_can_take_it():
    pool = one_agent_per_zone(cpus=1)
    pool.disable_agent("c0")
    result = Matcher().schedule_once(requests(3, hard=[["zone", "GROUP_BY"]]), pool)
    assert zones_of(result, pool) == Counter({"a": 1, "b": 1})
    assert result.pending == {"job-1/w2": ["2 agents lacked cpus", "1 agent disabled"]}


# -- GROUP_BY n: Marathon's rule ------------------------------------------------------------

def test_group_by_n_opens_n_groups_then_fills_only_the_smallest():
    pool = pool_of(offer("a0", cpus=16, mem_mb=65536, zone="a"), offer("b0", cpus=16, mem_mb=65536, zone="b"))
    for i in range(2):
        pool.restore(f"job-1/r{i}", request(f"job-1/r{i}"), "a0", [])
    result = Matcher().schedule_once(requests(4, hard=[["zone", "GROUP_BY", "2"]]), pool)
    # 1st: one group exists (a), fewer than 2, so only a new value: b.  2nd: a=2, b=1,
    # b is the smallest.  3rd: a=2, b=2, either (a0 and b0 pack alike: the tie goes to
    # the lower host name, a0's).  4th: b, the smallest again.
    assert [pool.agent(a.agent_id).attributes["zone"] for a in result.assignments] == ["b", "b", "a", "b"]
    assert zones_of(result, pool) == Counter({"b": 3, "a": 1})  # ending a3 b3


def test_group_by_n_never_adds_to_a_group_larger_than_the_smallest():
    pool = one_agent_per_zone()
    for i, agent in enumerate(["a0", "a0", "b0"]):
        pool.restore(f"job-1/r{i}", request(f"job-1/r{i}"), agent, [])
    # Two groups exist (a=2, b=1): a is not among the smallest although a0 packs best;
    # b (the smallest) and c (a new group, of size 0) are allowed; b0 packs better.
    result = Matcher().schedule_once([request("job-1/w0", hard=[["zone", "GROUP_BY", "2"]])], pool)
    assert hosts_of(result) == {"job-1/w0": "b0"}


def test_group_by_n_waits_while_fewer_than_n_values_can_open_a_group():
    pool = pool_of(offer("a0", zone="a"), offer("b0", zone="b"))
    pool.restore("job-1/r0", request("job-1/r0"), "a0", [])
    result = Matcher().schedule_once(requests(2, hard=[["zone", "GROUP_BY", "3"]]), pool)
    # As Marathon documents: with fewer values than n, the instances after the groups
    # that can open wait (the third group never comes).
    assert hosts_of(result) == {"job-1/w0": "b0"}
    assert result.pending == {"job-1/w1": ["2 agents failed GROUP_BY zone 3"]}


# -- the search weighs every fitting agent until one is good enough --------------------------

def packing_trap():
    """40 agents with fewer free cpus that fit a 1-cpu 8 GB worker poorly (2 cpus, 128 GB:
    fitness 0.28 with the plain average, 0.0625 balanced), then one that fits it snugly
    (4 cpus, 8 GB: fitness 0.625, 0.25 balanced)."""
    poor = [offer(f"poor{i:02d}", cpus=2, mem_mb=131072) for i in range(40)]
    return pool_of(*poor, offer("snug", cpus=4, mem_mb=8192))


def test_the_search_goes_past_the_first_32_fitting_agents_to_the_best_fit():
    work = [request("j/w0", cpus=1, mem_mb=8192)]
    # No agent reaches 0.9: only the whole search finds the best one.
    assert hosts_of(Matcher(good_enough=0.9).schedule_once(work, packing_trap())) == {"j/w0": "snug"}
    # The policy the matcher used to have settles for the best of the first 32.
    assert hosts_of(Matcher(good_enough=0.9, search_limit=32).schedule_once(work, packing_trap())) == {
        "j/w0": "poor00"}


def test_a_good_enough_agent_is_the_only_early_stop():
    work = [request("j/w0", cpus=1, mem_mb=8192)]
    # With Fenzo's average, poor00 scores 0.5 * 0.28 + 0.5 = 0.64, good enough at 0.63:
    # Fenzo stops there.
    average = Matcher(fitness=cpu_mem_network_bin_packing, good_enough=0.63)
    assert hosts_of(average.schedule_once(work, packing_trap())) == {"j/w0": "poor00"}
    # Balanced, poor00 scores 0.5 * 0.0625 + 0.5 = 0.53: it stops there only at 0.53.
    assert hosts_of(Matcher(good_enough=0.53).schedule_once(work, packing_trap())) == {"j/w0": "poor00"}
    assert hosts_of(Matcher(good_enough=0.63).schedule_once(work, packing_trap())) == {"j/w0": "snug"}


def test_a_run_of_identical_requests_lands_where_one_search_each_would():
    def cluster():
        return pool_of(*(offer(f"h{i:02d}", cpus=[2, 4, 8][i % 3], mem_mb=[4096, 16384, 65536][i % 3] * (1 + i % 2))
                         for i in range(30)))
    work = requests(40, cpus=0.5, mem_mb=3000)
    together = cluster()
    at_once = hosts_of(Matcher(good_enough=0.95).schedule_once(work, together))
    apart = cluster()
    matcher = Matcher(good_enough=0.95)
    one_by_one: dict[str, str] = {}
    for w in work:
        one_by_one.update(hosts_of(matcher.schedule_once([w], apart)))
    assert len(at_once) == 40 and at_once == one_by_one


# -- submission order ------------------------------------------------------------------------

def test_workers_are_tried_in_submission_order_across_jobs():
    pool = pool_of(offer("a", cpus=4))
    work = [request("x/w0", job="x", cpus=2), request("y/w0", job="y", cpus=2), request("x/w1", job="x", cpus=2)]
    result = Matcher().schedule_once(work, pool)
    # x/w1 came after y/w0: it waits, although it is identical to x/w0.
    assert hosts_of(result) == {"x/w0": "a", "y/w0": "a"}
    assert list(result.pending) == ["x/w1"]


def test_the_scheduler_places_pending_workers_in_the_order_they_were_requested():
    m = PlacementMachine(launch_confirm_s=5.0, orphan_grace_s=30.0, started_at=0.0)
    m.register_agent(AgentOfferInfo(agent_id="a", hostname="a.host", cpus=4, mem_mb=8192, disk_mb=1000,
                                    network_mbps=100, ports=[[31000, 31009]], attributes={}), "addr", [], [], now=0.0)
    for key, job in [("x/w0", "x"), ("y/w0", "y"), ("x/w1", "x")]:
        m.request(WorkerSpec(worker_key=key, job_id=job, stage=1, index=0, number=0, entry_point="m:job",
                             parameters={}, cpus=2, mem_mb=512, disk_mb=10, network_mbps=1, num_ports=1),
                  "job-shard", now=1.0)
    m.place_round(now=1.0)
    assert sorted(m.placed) == ["x/w0", "y/w0"] and list(m.pending) == ["x/w1"]


# -- IS on numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("wanted, agent", [("8", "eight"), ("8.0", "eight"), ("16", "sixteen"), ("1.6e1", "sixteen")])
def test_is_compares_numeric_values_as_numbers(wanted, agent):
    pool = pool_of(offer("eight", cores="8.0"), offer("sixteen", cores="16"))
    result = Matcher().schedule_once([request("j/w0", hard=[["cores", "IS", wanted]])], pool)
    assert hosts_of(result) == {"j/w0": agent}


def test_is_compares_other_values_as_exact_strings():
    pool = pool_of(offer("upper", rack="R8"), offer("nan", cores="nan"))
    matcher = Matcher()
    assert matcher.schedule_once([request("j/w0", hard=[["rack", "IS", "r8"]])], pool).pending == {
        "j/w0": ["1 agent failed IS rack r8", "1 agent lacked attribute rack"]}
    assert hosts_of(matcher.schedule_once([request("k/w0", job="k", hard=[["cores", "IS", "nan"]])], pool)) == {
        "k/w0": "nan"}


# -- ties break on host name -----------------------------------------------------------------

@pytest.mark.parametrize("order", [("zeta", "alpha", "mid"), ("alpha", "mid", "zeta"), ("mid", "zeta", "alpha")])
def test_identical_agents_tie_and_the_lowest_host_name_wins_whatever_the_registration_order(order):
    pool = pool_of(*(offer(f"id-{name}", hostname=f"{name}.example") for name in order))
    result = Matcher().schedule_once(requests(2), pool)
    assert set(hosts_of(result).values()) == {"id-alpha"}


@pytest.mark.parametrize("fitness", [cpu_mem_network_bin_packing, balanced_bin_packing])
def test_equal_fitness_on_different_agents_goes_to_the_lowest_host_name(fitness):
    # "zz" has 2 free cpus of 2 and 2 GB of 4 free; "aa" 3 of 8 and 3 GB of 4 free: a
    # 1-cpu 1 GB worker leaves cpus and memory at 0.5 and 0.75 on zz, 0.75 and 0.5 on
    # aa, so both score 0.625 averaged and 0.5 balanced.
    def fresh(first, second):
        pool = pool_of(first, second)
        pool.restore("o/w0", request("o/w0", job="o", cpus=0, mem_mb=2048), "zz", [])
        pool.restore("o/w1", request("o/w1", job="o", cpus=5, mem_mb=1024), "aa", [])
        return pool
    zz = offer("zz", cpus=2, mem_mb=4096, hostname="zz.example")
    aa = offer("aa", cpus=8, mem_mb=4096, hostname="aa.example")
    work = [request("j/w0", cpus=1, mem_mb=1024)]
    # zz is met first (fewer free cpus); with nothing good enough the tie goes to aa.
    matcher = Matcher(fitness=fitness, good_enough=1.0)
    assert hosts_of(matcher.schedule_once(work, fresh(zz, aa))) == {"j/w0": "aa"}
    assert hosts_of(matcher.schedule_once(work, fresh(aa, zz))) == {"j/w0": "aa"}


# -- the fast paths place exactly where the plain rule says ----------------------------------

def reference_round(matcher: Matcher, work: list, pool) -> list[tuple[str, str]]:
    """The documented rule, without the matcher's shortcuts: per request in order, weigh
    every agent in the index's order; the first at the lowest balance level scoring at
    least good_enough wins, otherwise the lowest (level, -score, host name); a request
    that finds none fails its identical successors of the round."""
    placed, failed = [], set()
    sw, fw = matcher.soft_weight, 1.0 - matcher.soft_weight
    for r in work:
        if r.group_key in failed:
            continue
        checks = [c for c in (h.bind(r, pool) for h in r.hard_constraints) if c is not None]
        balances = [b for b in (h.bind_balance(r, pool) for h in r.hard_constraints) if b is not None]
        scores = [s for s in (c.bind_score(r, pool) for c in r.soft_constraints) if s is not None]
        floor = tuple(b.floor() for b in balances)
        best, best_key = None, None
        for entry in pool.candidates(r.cpus):
            agent = entry[3]
            if (agent.free_mem_mb < r.mem_mb - 1e-9 or agent.free_disk_mb < r.disk_mb - 1e-9
                    or agent.free_network_mbps < r.network_mbps - 1e-9 or agent.free_port_count < r.num_ports
                    or (r.exclusive and agent.workers) or not all(c(agent) for c in checks)):
                continue
            fit = matcher.fitness(r, agent)
            if fit <= 0.0:
                continue
            score = fw * fit + (sw * sum(s(agent) for s in scores) / len(scores) if scores else sw)
            level = tuple(b.level(agent) for b in balances)
            if level == floor and score >= matcher.good_enough:
                best = agent
                break
            key = (level, -score, agent.hostname)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        if best is None:
            failed.add(r.group_key)
            continue
        pool.assign(r, best.agent_id, pool.pick_ports(best, r.num_ports))
        placed.append((r.worker_key, best.agent_id))
    return placed


@pytest.mark.parametrize("good_enough", [0.63, 0.8, 0.95])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_matcher_places_exactly_where_the_plain_rule_does(seed, good_enough):
    import random
    rng = random.Random(seed)
    types = [(2, 4096), (4, 16384), (4, 32768), (8, 16384), (16, 65536)]
    offers = []
    for i in range(60):
        cpus, mem = rng.choice(types)
        offers.append(offer(f"a{i:02d}", cpus=cpus, mem_mb=mem, disk_mb=rng.choice([5000, 20000]),
                            ports=[(31000, 31000 + rng.randint(1, 6))], hostname=f"h{rng.randrange(10**6):06d}",
                            zone="abc"[i % 3], kind=rng.choice(["x", "y"])))
    mixes = [((), ()), (("UniqueHost",), ()), ((["zone", "GROUP_BY"],), ()), ((["zone", "GROUP_BY", "2"],), ()),
             ((["kind", "LIKE", "x"],), ()), ((), ("ZoneBalance",)), ((["zone", "MAX_PER", "3"],), ()),
             ((["kind", "IS", "y"], ["zone", "GROUP_BY"]), ("UniqueHost",))]
    jobs = []
    for job in range(70):
        hard, soft = rng.choice(mixes)
        cpus, mem = rng.choice([0.25, 0.5, 1, 2]), rng.choice([512, 1024, 3000, 6000])
        disk, ports = rng.choice([0, 4000]), rng.randint(0, 2)
        jobs.append([request(f"j{job}/w{w}", job=f"j{job}", cpus=cpus, mem_mb=mem, disk_mb=disk, num_ports=ports,
                             hard=list(hard), soft=list(soft)) for w in range(rng.randint(1, 10))])
    work = []
    while jobs:  # the jobs interleaved, in runs of one to four identical requests
        job = rng.choice(jobs)
        for _ in range(min(len(job), rng.randint(1, 4))):
            work.append(job.pop(0))
        if not job:
            jobs.remove(job)
    fast, plain = pool_of(*offers), pool_of(*offers)
    matcher = Matcher(good_enough=good_enough)
    result = matcher.schedule_once(work, fast)
    assert [(a.worker_key, a.agent_id) for a in result.assignments] == reference_round(matcher, work, plain)
    assert result.pending  # the cluster is too small for all of it: failures are exercised too
