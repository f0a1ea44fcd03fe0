"""The scheduler's placement machine: every (state, event) handled or rejected with a
reason, the effects of each transition, the story, and validate()."""
from __future__ import annotations

import pytest

from actors.messages import AgentOfferInfo, WorkerSpec, WorkerStatus
from mantis.lifecycles import tables
from mantis.lifecycles.tables import InvariantViolation, TransitionRejected
from scheduler.placement_state import (
    LAUNCHING,
    PENDING,
    PLACEMENT_TABLE,
    RELEASED,
    RUNNING,
    AskAgentToRegister,
    AskJobToMove,
    LaunchOnAgent,
    PassStatuses,
    PlacementMachine,
    PlacementState,
    StopOnAgent,
    TellJobLaunched,
    TellUpstream,
    WorkerPlacement,
)

JOB = "job-shard"  # addresses are opaque to the machine


@pytest.fixture(autouse=True)
def validate_every_transition(monkeypatch):
    monkeypatch.setattr(tables, "VALIDATE", True)


def spec(key="job-1/w0", job="job-1", cpus=1.0, **extra):
    return WorkerSpec(worker_key=key, job_id=job, stage=1, index=0, number=0, entry_point="m:job", parameters={},
                      cpus=cpus, mem_mb=512, disk_mb=10, network_mbps=1, num_ports=1, **extra)


def offer(agent_id="a1", cpus=2.0):
    return AgentOfferInfo(agent_id=agent_id, hostname=f"{agent_id}.host", cpus=cpus, mem_mb=4096, disk_mb=1000,
                          network_mbps=100, ports=[[31000, 31009]], attributes={})


def machine(*agents, started_at=0.0, **kwargs) -> PlacementMachine:
    m = PlacementMachine(launch_confirm_s=5.0, orphan_grace_s=30.0, started_at=started_at, **kwargs)
    for agent_id in agents:
        m.register_agent(offer(agent_id), f"addr-{agent_id}", [], [], now=0.0)
    return m


def launched(m: PlacementMachine, key="job-1/w0", now=1.0) -> list:
    m.request(spec(key), JOB, now=now)
    return m.place_round(now=now)


def failed(key, text):
    return WorkerStatus(key, "Failed", text)


# -- the table --------------------------------------------------------------------------

def test_every_state_event_pair_is_handled_or_rejected_with_a_reason():
    for state in PlacementState:
        for event in PLACEMENT_TABLE.events:
            assert PLACEMENT_TABLE.allows(state, event) or (state, event) in PLACEMENT_TABLE.reasons, (state, event)


@pytest.mark.parametrize("state", list(PlacementState))
@pytest.mark.parametrize("event", PLACEMENT_TABLE.events)
def test_a_rejected_event_raises_with_its_reason_and_is_in_the_story(state, event):
    if PLACEMENT_TABLE.allows(state, event):
        assert PLACEMENT_TABLE.row(state, event).target in PlacementState
        return
    m = machine("a1")
    key = "job-1/w0"
    if state == PENDING:
        m.request(spec(key), JOB, now=1.0)
    elif state in (LAUNCHING, RUNNING):
        launched(m, key)
        if state == RUNNING:
            m.statuses("a1", [WorkerStatus(key, "Started")], now=2.0)
    assert m.state_of(key) == state
    with pytest.raises(TransitionRejected, match=PLACEMENT_TABLE.reasons[(state, event)]):
        m.handle(key, event, 3.0, stimulus_id="test-1")
    assert m.state_of(key) == state
    last = m.story(key)[-1]
    assert (last.stimulus_id, last.event, last.before, last.after) == ("test-1", event, state, None)
    assert last.note.startswith("rejected: ")


# -- the way of one worker ----------------------------------------------------------------

def test_requested_placed_confirmed_ended():
    m = machine("a1")
    assert m.request(spec(), JOB, now=1.0) == []
    assert m.state_of("job-1/w0") == PENDING
    assert m.pending_view() == [{"workerId": "job-1/w0", "jobId": "job-1", "stage": 1,
                                 "reasons": ["waiting for the next placement round"]}]
    effects = m.place_round(now=1.0)
    assert [type(e) for e in effects] == [LaunchOnAgent, TellJobLaunched]
    assert effects[0].agent == "addr-a1" and effects[0].spec.agent_id == "a1" and effects[0].spec.ports == [31000]
    assert effects[1] == TellJobLaunched(JOB, "job-1/w0", "a1", "a1.host", [31000])
    assert m.state_of("job-1/w0") == LAUNCHING and list(m.unconfirmed) == ["job-1/w0"]
    assert "job-1/w0" in m.placement.pool

    started = WorkerStatus("job-1/w0", "Started")
    assert m.statuses("a1", [started], now=2.0) == [PassStatuses(JOB, [("a1", started)])]
    assert m.state_of("job-1/w0") == RUNNING and not m.unconfirmed
    assert m.workers_on("a1") == ["job-1/w0"]

    done = WorkerStatus("job-1/w0", "Completed")
    assert m.statuses("a1", [done], now=3.0) == [PassStatuses(JOB, [("a1", done)])]
    assert m.state_of("job-1/w0") == RELEASED and "job-1/w0" not in m.placement.pool
    assert [(e.event, e.before, e.after) for e in m.story("job-1/w0")] == [
        ("requested", RELEASED, PENDING), ("placed", PENDING, LAUNCHING),
        ("confirmed", LAUNCHING, RUNNING), ("ended", RUNNING, RELEASED)]


def test_a_worker_that_fits_nowhere_stays_pending_with_the_reason():
    m = machine("a1")
    m.request(spec(cpus=8), JOB, now=1.0)
    assert m.place_round(now=1.0) == []
    assert m.state_of("job-1/w0") == PENDING
    assert m.pending_view()[0]["reasons"] == ["1 agent lacked cpus"]


def test_a_repeated_request_tells_the_job_where_the_worker_went():
    m = machine("a1")
    launched(m)
    # Launching: the ports of the launch.
    assert m.request(spec(), JOB, now=2.0) == [TellJobLaunched(JOB, "job-1/w0", "a1", "a1.host", [31000])]
    m.statuses("a1", [WorkerStatus("job-1/w0", "Started")], now=2.0)
    # Running: the ports the job's request carries.
    assert m.request(spec(ports=[31005]), "other", now=3.0) == [
        TellJobLaunched("other", "job-1/w0", "a1", "a1.host", [31005])]
    assert m.state_of("job-1/w0") == RUNNING


def test_an_unconfirmed_launch_is_sent_again_after_launch_confirm_s():
    m = machine("a1")
    launched(m, now=1.0)
    assert m.relaunch_unconfirmed(now=5.0) == []
    effects = m.relaunch_unconfirmed(now=6.5)
    assert [type(e) for e in effects] == [LaunchOnAgent, TellJobLaunched]
    assert m.unconfirmed["job-1/w0"].sent_at == 6.5
    assert m.relaunch_unconfirmed(now=7.0) == []
    assert [e.event for e in m.story("job-1/w0")][-1] == "relaunch-due"


def test_cancelled_in_each_state():
    m = machine("a1")
    m.request(spec("job-1/w0"), JOB, now=1.0)
    assert m.cancel("job-1/w0", None, "scaled down", now=1.0) == []
    assert m.state_of("job-1/w0") == RELEASED and not m.pending

    launched(m, "job-1/w1")
    assert m.cancel("job-1/w1", None, "killed", now=2.0) == [StopOnAgent("addr-a1", "job-1/w1", "killed")]
    assert m.state_of("job-1/w1") == RELEASED and "job-1/w1" not in m.placement.pool

    # Not tracked (a master restart): stopped on the agent the job names, if registered.
    assert m.cancel("job-1/w2", "a1", "killed", now=3.0) == [StopOnAgent("addr-a1", "job-1/w2", "killed")]
    assert m.cancel("job-1/w3", "gone", "killed", now=3.0) == []
    assert m.cancel("job-1/w4", None, "killed", now=3.0) == []


def test_statuses_of_a_pending_worker_change_nothing():
    m = machine("a1")
    m.request(spec(), JOB, now=1.0)
    m.statuses("a1", [WorkerStatus("job-1/w0", "Started"), WorkerStatus("job-1/w0", "Failed")], now=2.0)
    assert m.state_of("job-1/w0") == PENDING
    assert m.story("job-1/w0")[-1].note.startswith("rejected: ")


def test_a_lost_agent_releases_its_workers_and_reports_them_failed():
    m = machine("a1", "a2")
    m.register_job("job-1", JOB)
    launched(m, "job-1/w0", now=1.0)
    m.heartbeat("a2", "addr-a2", [], None, now=9.0)
    effects = m.lose_silent_agents(10.0, 5.0, failed)
    lost_agent = m.story("job-1/w0")[-1]
    assert (lost_agent.event, lost_agent.after) == ("agent-lost", RELEASED)
    assert "a1" not in m.agents and "a2" in m.agents
    assert effects == [PassStatuses(JOB, [("a1", WorkerStatus("job-1/w0", "Failed", "agent a1 lost"))])]
    assert m.state_of("job-1/w0") == RELEASED


def test_a_drained_agent_asks_the_jobs_to_move_their_workers():
    m = machine("a1")
    launched(m, "job-1/w3")
    moved, effects = m.set_agent("a1", "drain", "ops", now=2.0)
    assert moved == ["job-1/w3"]
    assert effects == [AskJobToMove(JOB, "job-1", 3, "ops", "agent a1 drained")]
    assert m.state_of("job-1/w3") == LAUNCHING
    m.request(spec("job-1/w4"), JOB, now=3.0)
    assert m.place_round(now=3.0) == []  # disabled: no new worker
    m.set_agent("a1", "enable", "ops")
    assert len(m.place_round(now=4.0)) == 2


def test_a_registering_agent_restores_its_running_workers():
    m = machine()
    m.register_job("job-1", JOB)
    running = spec("job-1/w0", agent_id="a1", ports=[31003], host="a1.host")
    status = WorkerStatus("job-1/w0", "Started")
    known, effects = m.register_agent(offer("a1"), "addr-a1", [running], [status], now=1.0)
    assert not known and effects == [PassStatuses(JOB, [("a1", status)])]
    assert m.state_of("job-1/w0") == RUNNING
    assert m.placement.pool.placement("job-1/w0").ports == [31003]
    known, _ = m.register_agent(offer("a1"), "addr-a1", [running], [], now=2.0)
    assert known and m.state_of("job-1/w0") == RUNNING


def test_upstream_word_for_a_worker_whose_agent_is_not_back_waits_for_it_and_goes_stale():
    m = machine()
    m.register_job("job-1", JOB)
    upstream = [("job-1/w0", "a1.host", 31001)]
    # A recovered job tells its stage-2 worker before the worker's agent is back: held.
    assert m.upstream("job-1/w5", upstream, False, now=1.0) == []
    assert m.upstream("job-1/w6", upstream, False, now=1.0) == []
    running = spec("job-1/w5", agent_id="a1", ports=[31003], host="a1.host")
    _, effects = m.register_agent(offer("a1"), "addr-a1", [running], [], now=2.0)
    assert effects == [TellUpstream("addr-a1", "job-1/w5", upstream, False)]
    # Once placed, word goes to its agent at once.
    assert m.upstream("job-1/w5", [], True, now=3.0) == [TellUpstream("addr-a1", "job-1/w5", [], True)]
    # Word for a worker whose agent never comes back is dropped after HELD_UPSTREAM_S.
    m.upstream("job-1/w7", upstream, False, now=1000.0)
    assert set(m.held_upstreams) == {"job-1/w7"}


def test_orphans_are_stopped_after_the_grace_and_unknown_agents_asked_to_register():
    m = machine("a1", started_at=0.0)
    status = WorkerStatus("gone-1/w0", "Started")
    assert m.statuses("a1", [status], now=10.0) == []
    assert m.statuses("a1", [status], now=31.0) == [StopOnAgent("addr-a1", "gone-1/w0", "its job is gone")]
    assert m.heartbeat("nobody", "addr-x", [status], None, now=31.0) == [AskAgentToRegister("addr-x")]


def test_agents_view_has_heartbeat_ages_and_lags():
    m = machine("a1")
    m.heartbeat("a1", "addr-a1", [], sent_at=4.5, now=5.0)
    [agent] = m.agents_view(now=6.0)
    assert (agent["agentId"], agent["lastHeartbeatAgoS"], agent["heartbeatLagS"]) == ("a1", 1.0, 0.5)


# -- story ---------------------------------------------------------------------------------

def test_the_story_groups_a_round_under_one_stimulus_id():
    m = machine("a1")
    m.request(spec("job-1/w0"), JOB, now=1.0)
    m.request(spec("job-1/w1"), JOB, now=1.0)
    m.place_round(now=2.0)
    entries = [e for e in m.story("job-1/w0", "job-1/w1") if e.event == "placed"]
    assert [e.key for e in entries] == ["job-1/w0", "job-1/w1"]
    assert entries[0].stimulus_id == entries[1].stimulus_id and entries[0].stimulus_id.startswith("place-")
    assert len(m.log.story("job-1/w0")) == 2


# -- validate --------------------------------------------------------------------------------

def test_validate_catches_a_key_in_two_states():
    m = machine("a1")
    launched(m)
    m.validate()
    m.pending["job-1/w0"] = m.placed["job-1/w0"]
    with pytest.raises(InvariantViolation, match="both pending and placed"):
        m.validate()


def test_validate_catches_a_placed_worker_on_an_unregistered_agent():
    m = machine("a1")
    launched(m)
    del m.agents["a1"]
    with pytest.raises(InvariantViolation, match="not registered"):
        m.validate()


def test_validate_catches_resources_the_pool_holds_for_no_placed_worker():
    m = machine("a1")
    m.placement.restore(spec("job-9/w0", agent_id="a1", ports=[31001]))
    with pytest.raises(InvariantViolation, match="pool accounts for"):
        m.validate()


def test_validate_catches_a_placed_worker_the_pool_does_not_account_for():
    m = machine("a1")
    launched(m)
    m.placement.release("job-1/w0")
    with pytest.raises(InvariantViolation, match="pool has it on no agent"):
        m.validate()


def test_validate_catches_an_unconfirmed_index_out_of_step():
    m = machine("a1")
    launched(m)
    m.statuses("a1", [WorkerStatus("job-1/w0", "Started")], now=2.0)
    m.unconfirmed["job-1/w0"] = m.placed["job-1/w0"]
    with pytest.raises(InvariantViolation, match="Running but unconfirmed"):
        m.validate()


def test_a_record_checks_its_own_rules():
    with pytest.raises(InvariantViolation, match="no agent"):
        WorkerPlacement("job-1/w0", state=RUNNING).validate()
