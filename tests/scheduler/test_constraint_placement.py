"""Hard constraints filter agents and soft constraints steer the choice, counting the
job's instances already in the pool and those placed earlier in the same round."""
from collections import Counter

import pytest

from scheduler import Matcher
from tests.scheduler.builders import hosts_of, offer, pool_of, request, requests


def zones_of(result, pool) -> Counter:
    return Counter(pool.agent(a.agent_id).attributes["zone"] for a in result.assignments)


def three_zones(per_zone: int = 2, **sizes):
    return pool_of(*(offer(f"{z}{i}", zone=z, **sizes) for z in "abc" for i in range(per_zone)))


# -- UNIQUE --------------------------------------------------------------------------------

def test_unique_host_puts_each_worker_of_a_job_on_its_own_host():
    pool = pool_of(offer("a1"), offer("a2"), offer("a3"))
    result = Matcher().schedule_once(requests(4, hard=["UniqueHost"]), pool)
    placed = hosts_of(result)
    assert len(placed) == 3 and len(set(placed.values())) == 3
    assert result.pending == {"job-1/w3": ["3 agents failed UniqueHost"]}


def test_unique_host_lets_different_jobs_share_a_host():
    pool = pool_of(offer("a1"), offer("a2"))
    work = [request("x/w0", job="x", hard=["UniqueHost"]), request("y/w0", job="y", hard=["UniqueHost"])]
    result = Matcher().schedule_once(work, pool)
    # Bin packing puts the second job next to the first: uniqueness is per job.
    assert set(hosts_of(result).values()) == {"a1"}


def test_unique_host_per_stage_lets_other_stages_share_the_host():
    pool = pool_of(offer("a1"), offer("a2"))
    work = [request("j/w0", job="j", stage=1, hard=["UniqueHostPerStage"]),
            request("j/w1", job="j", stage=1, hard=["UniqueHostPerStage"]),
            request("j/w2", job="j", stage=2, hard=["UniqueHostPerStage"])]
    placed = hosts_of(Matcher().schedule_once(work, pool))
    assert placed["j/w0"] != placed["j/w1"]
    assert placed["j/w2"] in (placed["j/w0"], placed["j/w1"])


def test_marathon_operators_count_the_whole_job_across_stages():
    pool = pool_of(offer("a1"), offer("a2"))
    work = [request("j/w0", job="j", stage=1, hard=[["hostname", "UNIQUE"]]),
            request("j/w1", job="j", stage=2, hard=[["hostname", "UNIQUE"]])]
    placed = hosts_of(Matcher().schedule_once(work, pool))
    assert placed["j/w0"] != placed["j/w1"]


def test_unique_on_an_attribute_allows_one_instance_per_value():
    pool = three_zones()
    result = Matcher().schedule_once(requests(4, hard=[["zone", "UNIQUE"]]), pool)
    assert zones_of(result, pool) == Counter({"a": 1, "b": 1, "c": 1})
    assert result.pending == {"job-1/w3": ["6 agents failed UNIQUE zone"]}


def test_unique_sees_workers_already_in_the_pool():
    pool = pool_of(offer("a1"), offer("a2"))
    pool.restore("j/w0", request("j/w0", job="j"), "a1", [])
    placed = hosts_of(Matcher().schedule_once([request("j/w1", job="j", hard=["UniqueHost"])], pool))
    assert placed == {"j/w1": "a2"}


# -- attributes missing, LIKE / UNLIKE / IS ------------------------------------------------

@pytest.mark.parametrize("spec", [
    ["zone", "UNIQUE"], ["zone", "CLUSTER"], ["zone", "CLUSTER", "a"], ["zone", "GROUP_BY"],
    ["zone", "GROUP_BY", "2"], ["zone", "MAX_PER", "1"], ["zone", "LIKE", ".*"], ["zone", "IS", "a"]])
def test_an_agent_lacking_the_attribute_fails_every_operator_but_unlike(spec):
    pool = pool_of(offer("bare"))
    result = Matcher().schedule_once([request("j/w0", hard=[spec])], pool)
    assert result.assignments == []
    assert result.pending == {"j/w0": ["1 agent lacked attribute zone"]}


def test_an_agent_lacking_the_attribute_passes_unlike():
    pool = pool_of(offer("bare"))
    result = Matcher().schedule_once([request("j/w0", hard=[["zone", "UNLIKE", "a"]])], pool)
    assert hosts_of(result) == {"j/w0": "bare"}


def test_like_must_match_the_whole_value():
    pool = pool_of(offer("m5", instance_type="m5.large"), offer("xm5", instance_type="xm5.large"))
    matcher = Matcher()
    partial = matcher.schedule_once([request("j/w0", hard=[["instance_type", "LIKE", "m5"]])], pool)
    assert partial.assignments == []
    assert partial.pending["j/w0"] == ["2 agents failed LIKE instance_type m5"]
    whole = matcher.schedule_once([request("j/w1", hard=[["instance_type", "LIKE", r"m5\..*"]])], pool)
    assert hosts_of(whole) == {"j/w1": "m5"}


def test_unlike_rejects_only_agents_whose_whole_value_matches():
    pool = pool_of(offer("c5", instance_type="c5.large"), offer("xc5", instance_type="xc5.large"))
    matcher = Matcher()
    # "c5" matches neither value as a whole: both agents pass; packing then picks the first.
    assert hosts_of(matcher.schedule_once(requests(2, job="p", cpus=3, hard=[["instance_type", "UNLIKE", "c5"]]),
                                          pool)) == {"p/w0": "c5", "p/w1": "xc5"}
    result = matcher.schedule_once([request("q/w0", job="q", hard=[["instance_type", "UNLIKE", r"c5\..*"]])], pool)
    assert hosts_of(result) == {"q/w0": "xc5"}


def test_is_requires_the_exact_value():
    pool = pool_of(offer("a", zone="us-east-1a"), offer("b", zone="us-east-1b"))
    result = Matcher().schedule_once([request("j/w0", hard=[["zone", "IS", "us-east-1b"]]),
                                      request("k/w0", job="k", hard=[["zone", "IS", "us-east-1"]])], pool)
    assert hosts_of(result) == {"j/w0": "b"}
    assert result.pending == {"k/w0": ["2 agents failed IS zone us-east-1"]}


# -- CLUSTER -------------------------------------------------------------------------------

def test_cluster_with_a_value_keeps_every_instance_on_that_value():
    pool = three_zones()
    result = Matcher().schedule_once(requests(5, cpus=2, hard=[["zone", "CLUSTER", "b"]]), pool)
    assert zones_of(result, pool) == Counter({"b": 4})  # two 4-cpu agents in b
    assert result.pending["job-1/w4"] == ["4 agents failed CLUSTER zone b", "2 agents lacked cpus"]


def test_cluster_without_a_value_pins_later_instances_to_the_first_ones_value():
    pool = three_zones()
    result = Matcher().schedule_once(requests(5, cpus=2, hard=[["zone", "CLUSTER"]]), pool)
    zones = zones_of(result, pool)
    assert len(zones) == 1 and sum(zones.values()) == 4
    assert result.pending["job-1/w4"] == ["4 agents failed CLUSTER zone", "2 agents lacked cpus"]


def test_cluster_without_a_value_follows_a_worker_already_running():
    pool = three_zones()
    pool.restore("job-1/w0", request("job-1/w0"), "c1", [])
    result = Matcher().schedule_once([request("job-1/w1", hard=[["zone", "CLUSTER"]])], pool)
    assert zones_of(result, pool) == Counter({"c": 1})


# -- GROUP_BY / ZoneBalance / MAX_PER -------------------------------------------------------

def test_group_by_with_a_number_spreads_instances_evenly_over_the_values():
    pool = three_zones()
    result = Matcher().schedule_once(requests(4, hard=[["zone", "GROUP_BY", "2"]]), pool)
    placed = [pool.agent(a.agent_id).attributes["zone"] for a in result.assignments]
    assert len(placed) == 4
    assert placed[0] != placed[1]  # two groups: the second instance opens the second one
    # Then only the smallest groups (or a new one) take more: never 3 on one value.
    assert max(Counter(placed).values()) == 2


def test_group_by_without_a_number_spreads_over_every_value_seen():
    pool = three_zones()
    result = Matcher().schedule_once(requests(7, hard=[["zone", "GROUP_BY"]]), pool)
    zones = zones_of(result, pool)
    assert sorted(zones.values()) == [2, 2, 3]  # 7 // 3 each, the remainder one more


def test_zone_balance_as_a_hard_constraint_balances_each_stage():
    pool = three_zones()
    work = requests(6, hard=["ZoneBalance"]) + [request(f"job-1/s2w{i}", stage=2, hard=["ZoneBalance"])
                                                for i in range(3)]
    result = Matcher().schedule_once(work, pool)
    stage1 = Counter(pool.agent(a.agent_id).attributes["zone"] for a in result.assignments
                     if "s2" not in a.worker_key)
    stage2 = Counter(pool.agent(a.agent_id).attributes["zone"] for a in result.assignments
                     if "s2" in a.worker_key)
    assert stage1 == Counter({"a": 2, "b": 2, "c": 2}) and stage2 == Counter({"a": 1, "b": 1, "c": 1})


def test_max_per_caps_the_instances_on_each_value():
    pool = pool_of(offer("a1", rack="r1"), offer("a2", rack="r1"), offer("b1", rack="r2"))
    result = Matcher().schedule_once(requests(5, hard=[["rack", "MAX_PER", "2"]]), pool)
    racks = Counter(pool.agent(a.agent_id).attributes["rack"] for a in result.assignments)
    assert racks == Counter({"r1": 2, "r2": 2})
    assert result.pending == {"job-1/w4": ["3 agents failed MAX_PER rack 2"]}


# -- ExclusiveHost -----------------------------------------------------------------------------

def test_exclusive_host_takes_an_empty_agent_and_keeps_everyone_else_off_it():
    pool = pool_of(offer("busy"), offer("empty"))
    pool.restore("other/w0", request("other/w0", job="other"), "busy", [])
    matcher = Matcher()
    placed = hosts_of(matcher.schedule_once([request("x/w0", job="x", hard=["ExclusiveHost"])], pool))
    assert placed == {"x/w0": "empty"}
    later = matcher.schedule_once([request("y/w0", job="y", cpus=3.5), request("x/w1", job="x")], pool)
    # Nothing joins the exclusive worker, not even its own job.
    assert later.pending["y/w0"] == ["1 agent held an exclusive worker", "1 agent lacked cpus"]
    assert hosts_of(later) == {"x/w1": "busy"}


def test_exclusive_host_waits_when_every_agent_runs_something():
    pool = pool_of(offer("a1"))
    pool.restore("o/w0", request("o/w0", job="o"), "a1", [])
    result = Matcher().schedule_once([request("x/w0", job="x", hard=["ExclusiveHost"])], pool)
    assert result.pending == {"x/w0": ["1 agent ran other workers (ExclusiveHost)"]}


def test_releasing_the_exclusive_worker_reopens_its_agent():
    pool = pool_of(offer("a1"))
    matcher = Matcher()
    matcher.schedule_once([request("x/w0", job="x", hard=["ExclusiveHost"])], pool)
    assert matcher.schedule_once([request("y/w0", job="y")], pool).assignments == []
    pool.release("x/w0")
    assert hosts_of(matcher.schedule_once([request("y/w1", job="y")], pool)) == {"y/w1": "a1"}


# -- soft constraints ------------------------------------------------------------------------

def test_zone_balance_soft_prefers_the_zone_with_the_fewest_instances_of_the_stage():
    pool = pool_of(offer("a1", cpus=16, zone="a"), offer("b1", cpus=16, zone="b"))
    pool.restore("job-1/w0", request("job-1/w0"), "a1", [])
    # Bin packing alone would join the worker already on a1 (fewer free cpus).
    assert hosts_of(Matcher().schedule_once([request("job-1/w9")], pool_of(
        offer("a1", cpus=16, zone="a"), offer("b1", cpus=16, zone="b")))) == {"job-1/w9": "a1"}
    packed = hosts_of(Matcher().schedule_once([request("job-1/w1", soft=["ZoneBalance"])], pool))
    assert packed == {"job-1/w1": "b1"}


def test_zone_balance_soft_ignores_other_stages_and_jobs():
    pool = pool_of(offer("a1", cpus=16, zone="a"), offer("b1", cpus=16, zone="b"))
    pool.restore("job-1/w0", request("job-1/w0", stage=2), "b1", [])
    pool.restore("other/w0", request("other/w0", job="other"), "b1", [])
    placed = hosts_of(Matcher().schedule_once([request("job-1/w1", stage=1, soft=["ZoneBalance"])], pool))
    # Both zones hold no stage-1 instance: packing decides, and b1 is fuller.
    assert placed == {"job-1/w1": "b1"}


def test_soft_unique_host_spreads_a_job_over_hosts_with_fewer_of_its_instances():
    pool = pool_of(offer("a1", cpus=16), offer("a2", cpus=16))
    result = Matcher().schedule_once(requests(4, soft=["UniqueHost"]), pool)
    assert Counter(hosts_of(result).values()) == Counter({"a1": 2, "a2": 2})


def test_a_soft_constraint_never_leaves_a_worker_pending():
    pool = pool_of(offer("a1", zone="a"))
    result = Matcher().schedule_once([request("j/w0", soft=[["zone", "IS", "nowhere"], "ExclusiveHost"])], pool)
    assert hosts_of(result) == {"j/w0": "a1"}


def test_the_first_failing_hard_constraint_is_the_reason():
    pool = pool_of(offer("m", instance_type="m5.large"))
    pool.restore("j/w0", request("j/w0", job="j"), "m", [])
    result = Matcher().schedule_once(
        [request("j/w1", job="j", hard=["UniqueHost", ["instance_type", "LIKE", "c5.*"]])], pool)
    assert result.pending == {"j/w1": ["1 agent failed UniqueHost"]}
