"""The bridge the scheduler actor uses: actor messages in, assignments and reasons out."""
from actors.messages import AgentOfferInfo, WorkerSpec
from scheduler.placement import Placement


def spec(key, job="job-1", cpus=1.0, hard=(), **extra):
    return WorkerSpec(worker_key=key, job_id=job, stage=1, index=0, number=0, entry_point="m:job", parameters={},
                      cpus=cpus, mem_mb=512, disk_mb=10, network_mbps=1, num_ports=1,
                      hard_constraints=list(hard), **extra)


def agent(agent_id, cpus=2.0):
    return AgentOfferInfo(agent_id=agent_id, hostname=f"{agent_id}.host", cpus=cpus, mem_mb=4096, disk_mb=1000,
                          network_mbps=100, ports=[[31000, 31009]], attributes={"zone": "a"})


def test_placement_places_specs_and_keeps_reasons_for_the_rest():
    placement = Placement()
    placement.add_agent(agent("a1"))
    placed = placement.place([spec("job-1/w0", hard=["UniqueHost"]), spec("job-1/w1", hard=["UniqueHost"])])
    assert [(a.worker_key, a.agent_id, a.ports) for a in placed] == [("job-1/w0", "a1", [31000])]
    assert placement.pending_reasons == {"job-1/w1": ["1 agent failed UniqueHost"]}
    placement.add_agent(agent("a2"))
    assert [a.agent_id for a in placement.place([spec("job-1/w1", hard=["UniqueHost"])])] == ["a2"]
    assert placement.pending_reasons == {}


def test_placement_restores_releases_and_forgets_agents():
    placement = Placement()
    placement.add_agent(agent("a1", cpus=1))
    placement.restore(spec("job-1/w0", ports=[31005], agent_id="a1"))
    assert placement.place([spec("job-2/w0", job="job-2")]) == []
    assert placement.pending_reasons == {"job-2/w0": ["1 agent lacked cpus"]}
    placement.release("job-1/w0")
    assert [a.agent_id for a in placement.place([spec("job-2/w0", job="job-2")])] == ["a1"]
    assert placement.remove_agent("a1") == ["job-2/w0"]
    assert placement.snapshot() == []


def test_placement_reports_an_invalid_spec_instead_of_failing_the_round():
    placement = Placement()
    placement.add_agent(agent("a1"))
    placed = placement.place([spec("bad/w0", job="bad", hard=[["zone", "NEAR"]]), spec("ok/w0", job="ok")])
    assert [a.worker_key for a in placed] == ["ok/w0"]
    assert placement.pending_reasons["bad/w0"][0].startswith("invalid worker request: constraint")


def test_placement_disables_and_enables_agents():
    placement = Placement()
    placement.add_agent(agent("a1"))
    assert placement.disable_agent("a1")
    assert placement.place([spec("j/w0", job="j")]) == []
    assert placement.pending_reasons == {"j/w0": ["1 agent disabled"]}
    assert placement.enable_agent("a1")
    assert [a.agent_id for a in placement.place([spec("j/w0", job="j")])] == ["a1"]
