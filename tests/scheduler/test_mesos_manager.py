"""MesosManager: Mesos offers and task states in, the scheduler's leases and Mesos calls
out, with no I/O and a fixed clock."""
from actors.messages import WorkerSpec
from mantis.runtime.worker_launch import spec_from_json
from scheduler.mesos_manager import (
    Accept,
    Decline,
    ForgetAgent,
    Kill,
    MesosManager,
    Reconcile,
    RegisterMesosAgent,
    ReportStatuses,
    Revive,
    Suppress,
    TaskCommand,
    worker_status,
)


def offer(offer_id, agent="a1", cpus=4.0, mem=4096.0, ports=(31000, 31009), zone="z1"):
    return {"id": {"value": offer_id}, "agent_id": {"value": agent}, "hostname": f"{agent}.host",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                          {"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]}}],
            "attributes": [{"name": "zone", "type": "TEXT", "text": {"value": zone}},
                           {"name": "rack", "type": "SCALAR", "scalar": {"value": 3.0}}]}


def spec(key="j-1/w1", agent="a1", cpus=1.0, mem=256.0, ports=(31000,)):
    return WorkerSpec(worker_key=key, job_id="j-1", stage=1, index=0, number=1, entry_point="m:job", parameters={},
                      cpus=cpus, mem_mb=mem, disk_mb=0, network_mbps=10, num_ports=len(ports), ports=list(ports),
                      host=f"{agent}.host", agent_id=agent)


def manager():
    return MesosManager(TaskCommand("mantis worker", {"MANTIS_MASTER_URL": "http://m:1"}), offer_hold_s=5,
                        refuse_s=30)


def of(kind, effects):
    return [e for e in effects if isinstance(e, kind)]


def test_an_offer_becomes_the_agents_lease_with_its_attributes():
    m = manager()
    (reg,) = m.offered([offer("o1")], now=0)
    assert isinstance(reg, RegisterMesosAgent)
    o = reg.lease
    assert (o.agent_id, o.hostname, o.cpus, o.mem_mb, o.ports) == ("a1", "a1.host", 4.0, 4096.0, [(31000, 31009)])
    assert o.attributes == {"zone": "z1", "rack": "3"}


def test_a_placed_worker_is_launched_on_the_held_offer_with_its_resources_and_ports():
    m = manager()
    m.offered([offer("o1")], now=0)
    m.launch(spec())
    effects = m.flush()
    (accept,) = of(Accept, effects)
    assert accept.offer_ids == ["o1"]
    (task,) = accept.task_infos
    assert task["task_id"] == {"value": "j-1/w1"} and task["agent_id"] == {"value": "a1"}
    resources = {r["name"]: r for r in task["resources"]}
    assert resources["cpus"]["scalar"]["value"] == 1.0 and resources["mem"]["scalar"]["value"] == 256.0
    assert resources["ports"]["ranges"]["range"] == [{"begin": 31000, "end": 31000}]
    env = {v["name"]: v["value"] for v in task["command"]["environment"]["variables"]}
    launched = spec_from_json(env["MANTIS_WORKER_SPEC"])
    assert (launched.worker_key, launched.entry_point, launched.ports) == ("j-1/w1", "m:job", [31000])
    assert env["MANTIS_MASTER_URL"] == "http://m:1"
    # The offer is used: the lease is now the task's own resources.
    (reg,) = of(RegisterMesosAgent, effects)
    assert reg.lease.cpus == 1.0 and [w.worker_key for w in reg.workers] == ["j-1/w1"]
    assert m.launch(spec()) == [] and m.flush() == []  # a repeated launch


def test_a_rescinded_offer_leaves_the_lease_and_a_launch_on_it_fails_the_worker():
    m = manager()
    m.offered([offer("o1")], now=0)
    (reg,) = m.rescinded("o1")
    assert reg.lease.cpus == 0
    m.launch(spec())
    effects = m.flush()
    assert of(Accept, effects) == []
    (report,) = of(ReportStatuses, effects)
    assert report.statuses[0].status == "Failed" and "offer" in report.statuses[0].reason


def test_unused_offers_are_declined_after_the_hold_time_with_the_refuse_filter():
    m = manager()
    m.offered([offer("o1")], now=0)
    assert m.expire_offers(now=4.9) == []
    effects = m.expire_offers(now=5.0)
    assert of(Decline, effects) == [Decline(["o1"], 30.0)]
    assert of(RegisterMesosAgent, effects)[0].lease.cpus == 0


def test_revive_while_workers_wait_at_most_once_per_hold_time_and_suppress_when_none_do():
    m = manager()
    assert m.waiting(0, now=0) == [Suppress()]
    assert m.waiting(0, now=1) == []
    assert m.waiting(2, now=2) == [Revive()]
    assert m.waiting(2, now=3) == []
    assert m.waiting(2, now=7) == [Revive()]
    assert m.waiting(0, now=8) == [Suppress()]


def test_task_states_drive_the_worker_lifecycle():
    m = manager()
    m.offered([offer("o1")], now=0)
    m.launch(spec())
    m.flush()
    seen = []
    for state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_FAILED"):
        for e in of(ReportStatuses, m.updated({"task_id": {"value": "j-1/w1"}, "state": state,
                                                 "agent_id": {"value": "a1"}})):
            seen += [s.status for s in e.statuses]
    assert seen == ["StartInitiated", "Started", "Failed"]
    assert m.tasks == {}
    assert worker_status("TASK_KILLED", stopping=True) == "Completed"
    assert worker_status("TASK_KILLED", stopping=False) == "Failed"
    for lost in ("TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE",
                 "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"):
        assert worker_status(lost, stopping=False) == "Failed"


def test_a_stopped_worker_is_killed_and_its_killed_task_completes_it():
    m = manager()
    m.offered([offer("o1")], now=0)
    m.launch(spec())
    m.flush()
    assert m.stop("j-1/w1", "scaled down") == [Kill("j-1/w1", "a1")]
    (report,) = of(ReportStatuses, m.updated({"task_id": {"value": "j-1/w1"}, "state": "TASK_KILLED",
                                              "agent_id": {"value": "a1"}}))
    assert report.statuses[0].status == "Completed"
    assert m.stop("j-1/w9", "gone") == []


def test_an_agent_failure_fails_its_workers_and_forgets_the_agent():
    m = manager()
    m.offered([offer("o1"), offer("o2", agent="a2")], now=0)
    m.launch(spec())
    m.flush()
    effects = m.agent_failed("a1")
    (report,) = of(ReportStatuses, effects)
    assert [(s.worker_key, s.status) for s in report.statuses] == [("j-1/w1", "Failed")]
    assert of(ForgetAgent, effects) == [ForgetAgent("a1", "Mesos agent a1 failed")]
    assert list(m.agents) == ["a2"]


def test_after_subscribing_known_tasks_are_reconciled_explicitly_then_all_implicitly():
    m = manager()
    m.offered([offer("o1")], now=0)
    m.launch(spec())
    m.flush()
    effects = m.subscribed()
    assert of(Reconcile, effects) == [Reconcile([{"task_id": {"value": "j-1/w1"}, "agent_id": {"value": "a1"}}]),
                                      Reconcile([])]
    assert manager().subscribed() == [Reconcile([])]


def test_a_task_learnt_by_reconciliation_is_reported_so_its_job_reattaches_or_stops_it():
    m = manager()
    effects = m.updated({"task_id": {"value": "j-7/w3"}, "state": "TASK_RUNNING", "agent_id": {"value": "a9"}})
    assert of(RegisterMesosAgent, effects)[0].lease.agent_id == "a9"
    (report,) = of(ReportStatuses, effects)
    assert (report.agent_id, report.statuses[0].worker_key, report.statuses[0].status) == ("a9", "j-7/w3", "Started")
    assert [r.agent_id for r in m.heartbeats()] == ["a9"]


def test_a_worker_report_keeps_its_metrics_and_answers_its_upstream():
    m = manager()
    m.offered([offer("o1")], now=0)
    m.launch(spec())
    m.flush()
    m.set_upstream("j-1/w1", [["j-1/w0", "h", 31001]], False)
    answer = m.worker_report("j-1/w1", {"eventsIn": 5})
    assert answer == {"known": True, "endpoints": [["j-1/w0", "h", 31001]], "upstreamFinished": False}
    m.updated({"task_id": {"value": "j-1/w1"}, "state": "TASK_RUNNING", "agent_id": {"value": "a1"}})
    (beat,) = m.heartbeats()
    assert beat.statuses[0].metrics == {"eventsIn": 5}
