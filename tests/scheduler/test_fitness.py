"""Fitness calculators score the share of an agent used after placing; 0 means no fit."""
import pytest

from scheduler import Matcher
from scheduler.fitness import (
    average_of,
    balanced_bin_packing,
    cpu_bin_packing,
    cpu_mem_network_bin_packing,
    memory_bin_packing,
    network_bin_packing,
)
from tests.scheduler.builders import hosts_of, offer, pool_of, request


def agent_with(used_cpus=0.0, used_mem=0.0, used_network=0.0, **sizes):
    """An agent (4 cpus, 8 GB, 1000 Mbps unless told) with some usage already placed."""
    pool = pool_of(offer("a", **sizes))
    if used_cpus or used_mem or used_network:
        pool.restore("other/w0", request("other/w0", job="other", cpus=used_cpus, mem_mb=used_mem,
                                         network_mbps=used_network), "a", [])
    return pool.agent("a")


def test_cpu_bin_packing_is_the_share_of_cpus_in_use_after_placing():
    assert cpu_bin_packing(request("j/w0", cpus=1), agent_with(used_cpus=1)) == pytest.approx(0.5)
    assert cpu_bin_packing(request("j/w0", cpus=3), agent_with(used_cpus=1)) == pytest.approx(1.0)


def test_memory_bin_packing_is_the_share_of_memory_in_use_after_placing():
    assert memory_bin_packing(request("j/w0", mem_mb=2048), agent_with(used_mem=4096)) == pytest.approx(0.75)


def test_network_bin_packing_is_the_share_of_bandwidth_in_use_after_placing():
    assert network_bin_packing(request("j/w0", network_mbps=100), agent_with(used_network=400)) \
        == pytest.approx(0.5)


@pytest.mark.parametrize("calculator, too_big", [
    (cpu_bin_packing, {"cpus": 3.5}),
    (memory_bin_packing, {"mem_mb": 6000}),
    (network_bin_packing, {"network_mbps": 700}),
    (cpu_mem_network_bin_packing, {"cpus": 3.5}),
    (cpu_mem_network_bin_packing, {"mem_mb": 6000}),
    (cpu_mem_network_bin_packing, {"network_mbps": 700}),
    (balanced_bin_packing, {"cpus": 3.5}),
    (balanced_bin_packing, {"mem_mb": 6000}),
    (balanced_bin_packing, {"network_mbps": 700}),
])
def test_fitness_is_zero_when_the_request_does_not_fit(calculator, too_big):
    agent = agent_with(used_cpus=1, used_mem=4096, used_network=400)
    assert calculator(request("j/w0", **too_big), agent) == 0.0


def test_fuller_agents_score_higher():
    small = request("j/w0", cpus=1, mem_mb=1024)
    for calculator in (cpu_bin_packing, memory_bin_packing, cpu_mem_network_bin_packing, balanced_bin_packing):
        assert calculator(small, agent_with(used_cpus=2, used_mem=4096)) > calculator(small, agent_with())


def test_combined_averages_cpu_memory_and_network_when_network_is_asked_for():
    agent = agent_with(used_cpus=1, used_mem=2048, used_network=200)
    with_network = request("j/w0", cpus=1, mem_mb=2048, network_mbps=300)
    assert cpu_mem_network_bin_packing(with_network, agent) == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    without_network = request("j/w1", cpus=1, mem_mb=0)
    assert cpu_mem_network_bin_packing(without_network, agent) == pytest.approx((0.5 + 0.25) / 2)


def test_average_of_averages_and_zeroes_when_one_calculator_does():
    both = average_of(cpu_bin_packing, memory_bin_packing)
    agent = agent_with(used_cpus=1, used_mem=2048)
    assert both(request("j/w0", cpus=1, mem_mb=2048), agent) == pytest.approx((0.5 + 0.5) / 2)
    assert both(request("j/w0", cpus=1, mem_mb=9000), agent) == 0.0
    with pytest.raises(ValueError):
        average_of()


def test_a_request_for_nothing_fits_an_idle_agent():
    nothing = request("j/w0", cpus=0, mem_mb=0)
    assert cpu_mem_network_bin_packing(nothing, agent_with()) > 0.0
    assert hosts_of(Matcher().schedule_once([nothing], pool_of(offer("a")))) == {"j/w0": "a"}


def test_an_agent_offering_none_of_a_resource_fits_only_requests_for_none():
    agent = agent_with(network_mbps=0)
    assert network_bin_packing(request("j/w0", network_mbps=0), agent) == 1.0
    assert network_bin_packing(request("j/w0", network_mbps=1), agent) == 0.0


def test_bin_packing_puts_a_worker_on_the_fuller_agent():
    pool = pool_of(offer("roomy", cpus=8, mem_mb=16384), offer("half", cpus=8, mem_mb=16384),
                   offer("big", cpus=32, mem_mb=65536))
    pool.restore("o/w0", request("o/w0", job="o", cpus=4, mem_mb=8192), "half", [])
    assert hosts_of(Matcher().schedule_once([request("j/w0")], pool)) == {"j/w0": "half"}


def test_bin_packing_fills_one_agent_before_opening_the_next():
    pool = pool_of(*(offer(f"a{i}") for i in range(4)))
    placed = hosts_of(Matcher().schedule_once([request(f"j/w{i}") for i in range(6)], pool))
    assert sorted(placed.values()) == ["a0"] * 4 + ["a1"] * 2


def test_a_custom_calculator_steers_the_choice():
    pool = pool_of(offer("small", cpus=2), offer("large", cpus=16))

    def emptiest(req, agent):  # spread instead of pack
        return agent.free_cpus / 16 if agent.free_cpus >= req.cpus else 0.0

    assert hosts_of(Matcher(fitness=emptiest, good_enough=1.0).schedule_once([request("j/w0")], pool)) \
        == {"j/w0": "large"}
    # The default packs instead, on the same two (still idle) agents.
    fresh = pool_of(offer("small", cpus=2), offer("large", cpus=16))
    assert hosts_of(Matcher().schedule_once([request("j/w1")], fresh)) == {"j/w1": "small"}


# -- balanced bin packing (the matcher's default) ------------------------------------------

def test_balanced_bin_packing_is_the_share_of_the_least_used_of_cpus_and_memory():
    agent = agent_with(used_cpus=1, used_mem=2048)
    # cpus (1 + 1) / 4 = 0.5, memory (2048 + 4096) / 8192 = 0.75: the lesser counts.
    assert balanced_bin_packing(request("j/w0", cpus=1, mem_mb=4096), agent) == pytest.approx(0.5)
    # cpus 0.75, memory 0.375.
    assert balanced_bin_packing(request("j/w0", cpus=2, mem_mb=1024), agent) == pytest.approx(0.375)


def test_balanced_bin_packing_averages_in_network_when_network_is_asked_for():
    agent = agent_with(used_cpus=1, used_mem=2048, used_network=200)
    asking = request("j/w0", cpus=1, mem_mb=4096, network_mbps=700)  # cpus 0.5, memory 0.75, network 0.9
    assert balanced_bin_packing(asking, agent) == pytest.approx((2 * 0.5 + 0.9) / 3)


def test_balanced_bin_packing_is_the_average_less_half_the_gap_between_cpus_and_memory():
    agent = agent_with(used_cpus=1, used_mem=1024)
    for cpus, mem in [(0.5, 4096), (2, 512), (1, 1024), (3, 7168)]:
        work = request("j/w0", cpus=cpus, mem_mb=mem)
        cpu, memory = cpu_bin_packing(work, agent), memory_bin_packing(work, agent)
        assert balanced_bin_packing(work, agent) == pytest.approx((cpu + memory) / 2 - abs(cpu - memory) / 2)


def test_the_default_fitness_keeps_each_agents_spare_resource_for_the_workers_that_need_it():
    # A compute agent (1 GB per cpu) and a memory agent (4 GB per cpu); a cpu-heavy
    # worker, then a memory-heavy one.
    def cluster():
        return pool_of(offer("compute", cpus=4, mem_mb=4096), offer("memory", cpus=2, mem_mb=8192))
    work = [request("a/w0", job="a", cpus=2, mem_mb=1024), request("b/w0", job="b", cpus=2, mem_mb=6144)]
    # The plain average scores the cpu-heavy worker higher on the memory agent (it
    # fills its cpus: (1.0 + 0.125) / 2 against (0.5 + 0.25) / 2), whose 7 GB then
    # sit beside no free cpu, and the memory-heavy worker fits nowhere.
    plain = Matcher(fitness=cpu_mem_network_bin_packing).schedule_once(work, cluster())
    assert hosts_of(plain) == {"a/w0": "memory"} and list(plain.pending) == ["b/w0"]
    # Balanced: the cpu-heavy worker leaves the memory agent's memory 1/8 used (score
    # 0.125) but the compute agent's lesser share at 0.25: it goes there, and both fit.
    balanced = Matcher().schedule_once(work, cluster())
    assert hosts_of(balanced) == {"a/w0": "compute", "b/w0": "memory"} and balanced.pending == {}
