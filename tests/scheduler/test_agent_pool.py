"""The agent pool: agents come and go, placements use and free resources and ports."""
import json

import pytest

from scheduler import AgentOffer, Matcher
from tests.scheduler.builders import hosts_of, offer, pool_of, request, requests


def test_ports_are_assigned_from_the_offered_ranges_lowest_first():
    pool = pool_of(offer("a", ports=[(31000, 31001), (32000, 32005)]))
    result = Matcher().schedule_once([request("j/w0", num_ports=4)], pool)
    assert result.assignments[0].ports == [31000, 31001, 32000, 32001]
    assert pool.used_ports("a") == [31000, 31001, 32000, 32001]
    assert pool.free("a")["ports"] == 4


def test_ports_are_not_reused_until_released():
    pool = pool_of(offer("a", ports=[(31000, 31003)]))
    matcher = Matcher()
    first = matcher.schedule_once([request("j/w0", num_ports=2)], pool).assignments[0]
    second = matcher.schedule_once([request("j/w1", num_ports=2)], pool).assignments[0]
    assert set(first.ports).isdisjoint(second.ports)
    blocked = matcher.schedule_once([request("j/w2", num_ports=1)], pool)
    assert blocked.pending == {"j/w2": ["1 agent lacked ports"]}
    pool.release("j/w0")
    third = matcher.schedule_once([request("j/w3", num_ports=2)], pool).assignments[0]
    assert sorted(third.ports) == sorted(first.ports)


def test_a_worker_needing_more_ports_goes_to_an_agent_that_has_them():
    pool = pool_of(offer("few", ports=[(31000, 31000)]), offer("many", cpus=16, ports=[(40000, 40009)]))
    result = Matcher().schedule_once([request("j/w0", num_ports=3)], pool)
    assert result.assignments[0].agent_id == "many" and result.assignments[0].ports == [40000, 40001, 40002]


def test_release_frees_resources_and_an_unknown_key_changes_nothing():
    pool = pool_of(offer("a"))
    Matcher().schedule_once([request("j/w0", cpus=3, mem_mb=4096, disk_mb=100, network_mbps=10, num_ports=1)],
                            pool)
    assert pool.free("a") == {"cpus": 1.0, "memMB": 4096.0, "diskMB": 9900.0, "networkMbps": 990.0, "ports": 9}
    before = pool.snapshot()
    assert pool.release("nobody/w1") is False
    assert pool.snapshot() == before
    assert pool.release("j/w0") is True
    assert pool.free("a") == {"cpus": 4.0, "memMB": 8192.0, "diskMB": 10000.0, "networkMbps": 1000.0, "ports": 10}
    assert "j/w0" not in pool and pool.placement("j/w0") is None


def test_remove_agent_returns_the_workers_that_were_on_it():
    pool = pool_of(offer("a"), offer("b"))
    Matcher().schedule_once(requests(2, hard=["UniqueHost"]), pool)
    on_a = [key for key in ("job-1/w0", "job-1/w1") if pool.placement(key).agent_id == "a"]
    assert pool.remove_agent("a") == on_a
    assert all(key not in pool for key in on_a)
    assert pool.remove_agent("a") == [] and pool.remove_agent("never") == []
    # The job's counters forgot them: when the host comes back, UniqueHost may use it again.
    pool.add_agent(offer("a"))
    assert hosts_of(Matcher().schedule_once([request("job-1/w9", hard=["UniqueHost"])], pool)) == {"job-1/w9": "a"}


def test_re_adding_an_agent_replaces_its_totals_and_keeps_its_workers():
    pool = pool_of(offer("a", cpus=4, zone="a"))
    Matcher().schedule_once([request("j/w0", cpus=3, num_ports=1)], pool)
    pool.add_agent(offer("a", cpus=8, zone="z", ports=[(31000, 31009)]))
    assert pool.placement("j/w0").agent_id == "a"
    assert pool.free("a")["cpus"] == 5.0 and pool.used_ports("a") == [31000]
    assert pool.agent("a").attributes == {"zone": "z"}
    # Its workers now count for the new attribute value.
    result = Matcher().schedule_once([request("j/w1", hard=[["zone", "UNIQUE"]])], pool)
    assert result.pending == {"j/w1": ["1 agent failed UNIQUE zone"]}


def test_a_disabled_agent_gets_no_new_workers_until_enabled():
    pool = pool_of(offer("a"))
    matcher = Matcher()
    assert pool.disable_agent("a") is True
    result = matcher.schedule_once([request("j/w0")], pool)
    assert result.pending == {"j/w0": ["1 agent disabled"]}
    assert pool.snapshot()[0]["disabled"] is True
    assert pool.enable_agent("a") is True
    assert hosts_of(matcher.schedule_once([request("j/w0")], pool)) == {"j/w0": "a"}
    assert pool.disable_agent("ghost") is False and pool.enable_agent("ghost") is False


def test_disabling_keeps_running_workers_and_survives_re_registration():
    pool = pool_of(offer("a"))
    Matcher().schedule_once([request("j/w0")], pool)
    pool.disable_agent("a")
    pool.add_agent(offer("a"))
    assert pool.placement("j/w0").agent_id == "a" and pool.agent("a").disabled


def test_restore_accounts_for_a_running_worker_after_a_master_restart():
    pool = pool_of(offer("a", ports=[(31000, 31003)]), offer("b"))
    assignment = pool.restore("j/w0", request("j/w0", job="j", cpus=2, num_ports=2), "a", [31000, 31002])
    assert (assignment.agent_id, assignment.ports) == ("a", [31000, 31002])
    assert pool.free("a")["cpus"] == 2.0 and pool.used_ports("a") == [31000, 31002]
    result = Matcher().schedule_once([request("j/w1", job="j", num_ports=2, hard=["UniqueHost"]),
                                      request("k/w0", job="k", num_ports=2)], pool)
    placed = {a.worker_key: a for a in result.assignments}
    assert placed["j/w1"].agent_id == "b"
    assert placed["k/w0"].agent_id == "a" and placed["k/w0"].ports == [31001, 31003]


def test_restore_trusts_the_agent_even_when_it_over_commits():
    pool = pool_of(offer("a", cpus=2))
    pool.restore("j/w0", request("j/w0", cpus=2), "a", [])
    pool.restore("j/w1", request("j/w1", cpus=2), "a", [])
    assert pool.free("a")["cpus"] == -2.0
    assert Matcher().schedule_once([request("j/w2", cpus=0.5)], pool).pending == {"j/w2": ["1 agent lacked cpus"]}
    with pytest.raises(KeyError, match="unknown agent 'ghost'"):
        pool.restore("j/w3", request("j/w3"), "ghost", [])


def test_restoring_a_known_worker_moves_it():
    pool = pool_of(offer("a"), offer("b"))
    pool.restore("j/w0", request("j/w0", cpus=2), "a", [])
    pool.restore("j/w0", request("j/w0", cpus=2), "b", [])
    assert pool.placement("j/w0").agent_id == "b"
    assert pool.free("a")["cpus"] == 4.0 and pool.free("b")["cpus"] == 2.0


def test_assign_refuses_what_would_corrupt_the_record():
    pool = pool_of(offer("a"))
    pool.assign(request("j/w0", num_ports=1), "a", [31000])
    with pytest.raises(ValueError, match="already placed on a"):
        pool.assign(request("j/w0"), "a", [])
    with pytest.raises(ValueError, match=r"ports \[31000\] are already in use on agent a"):
        pool.assign(request("j/w1", num_ports=1), "a", [31000])
    with pytest.raises(KeyError):
        pool.assign(request("j/w2"), "ghost", [])


def test_snapshot_lists_every_agent_as_json():
    pool = pool_of(offer("a", zone="z"), offer("b"))
    Matcher().schedule_once([request("j/w0", cpus=1.5, mem_mb=512, num_ports=2)], pool)
    snapshot = json.loads(json.dumps(pool.snapshot()))
    assert [a["agentId"] for a in snapshot] == ["a", "b"]
    a = snapshot[0]
    assert a["hostname"] == "a.host" and a["attributes"] == {"zone": "z"} and a["disabled"] is False
    assert a["total"] == {"cpus": 4.0, "memMB": 8192.0, "diskMB": 10000.0, "networkMbps": 1000.0,
                          "ports": [[31000, 31009]]}
    assert a["used"] == {"cpus": 1.5, "memMB": 512.0, "diskMB": 0.0, "networkMbps": 0.0, "ports": [31000, 31001]}
    assert a["workers"] == ["j/w0"] and snapshot[1]["workers"] == []


def test_offers_normalise_port_ranges_and_reject_bad_ones():
    assert AgentOffer("a", "h", 1, 1, ports=[[31000, 31005]]).ports == [(31000, 31005)]
    with pytest.raises(ValueError, match="bad port range"):
        AgentOffer("a", "h", 1, 1, ports=[(5, 1)])
