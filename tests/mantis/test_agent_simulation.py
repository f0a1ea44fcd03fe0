"""The simulated fleet as a pure model: lifecycles, faults, and determinism."""
from dataclasses import dataclass, field

from mantis.tooling.agent_simulation import Faults, Fleet, Timing

AGENTS = ["sim-0", "sim-1", "sim-2"]


@dataclass
class Spec:
    """The part of a WorkerSpec the model reads."""

    worker_key: str
    stage: int = 1
    ports: list = field(default_factory=lambda: [31000])
    host: str = ""


def run(fleet: Fleet, until: float, step: float = 0.1, start: float = 0.0) -> list[tuple]:
    """Tick ``fleet`` from ``start`` to ``until``; every reported (time, agent, worker, state)."""
    seen = []
    for i in range(int(round((until - start) / step)) + 1):
        now = round(start + i * step, 6)
        for report in fleet.tick(now):
            seen += [(now, report.agent_id, s.worker_key, s.status) for s in report.statuses]
    return seen


def scenario(seed: int, faults: Faults) -> list[tuple]:
    """Thirty workers over three agents for a minute, a few stopped along the way."""
    fleet = Fleet(AGENTS, seed=seed, faults=faults, timing=Timing(heartbeat_interval_s=1.0))
    for n in range(30):
        fleet.launch(AGENTS[n % 3], Spec(f"job-1/w{n}"), now=0.0)
    seen = run(fleet, 20.0)
    for n in range(0, 30, 7):
        fleet.stop(fleet.agent_of(f"job-1/w{n}"), f"job-1/w{n}", now=20.0, reason="scaled down")
    return seen + run(fleet, 60.0, start=20.0)


def states_of(seen: list[tuple], key: str) -> list[str]:
    """The distinct states reported for one worker, in order."""
    out = []
    for _, _, k, state in seen:
        if k == key and (not out or out[-1] != state):
            out.append(state)
    return out


def test_a_launched_worker_goes_start_initiated_then_started_and_reports_a_port():
    fleet = Fleet(AGENTS, seed=1)
    assert fleet.launch("sim-1", Spec("job-1/w1", ports=[31007]), now=0.0)
    seen = run(fleet, 3.0)
    assert states_of(seen, "job-1/w1") == ["StartInitiated", "Started"]
    assert {agent for _, agent, _, _ in seen} == {"sim-1"}
    started_at = min(t for t, _, k, s in seen if s == "Started")
    assert started_at < 1.5  # "shortly after": jittered 0.2 s + 0.5 s means, at most 1.05 s
    assert [what for _, what, _ in fleet.story("job-1/w1")] == ["launched", "StartInitiated", "Started"]
    metrics = fleet.tick(10.0)
    (status,) = [s for r in metrics for s in r.statuses if s.worker_key == "job-1/w1"]
    assert status.metrics["port"] == 31007 and status.metrics["eventsOut"] > 0


def test_a_repeated_launch_is_ignored_and_an_unknown_agent_refused():
    fleet = Fleet(AGENTS)
    assert fleet.launch("sim-0", Spec("job-1/w1"), now=0.0)
    assert not fleet.launch("sim-0", Spec("job-1/w1"), now=0.5)
    assert not fleet.launch("elsewhere", Spec("job-1/w2"), now=0.5)
    assert [w.key for w in fleet.live_workers("sim-0")] == ["job-1/w1"]


def test_every_agent_heartbeats_once_per_interval_even_without_workers():
    fleet = Fleet(AGENTS, timing=Timing(heartbeat_interval_s=1.0))
    beats = []
    for i in range(101):
        beats += [(i / 10, r.agent_id) for r in fleet.tick(i / 10) if r.heartbeat]
    for agent in AGENTS:
        assert len([a for _, a in beats if a == agent]) == 10
    # Spread over the interval, not all at once.
    assert len({t for t, _ in beats[:3]}) == 3


def test_a_stopped_worker_is_completed_and_no_longer_reported():
    fleet = Fleet(AGENTS, seed=2)
    fleet.launch("sim-0", Spec("job-1/w1"), now=0.0)
    run(fleet, 3.0)
    fleet.stop("sim-0", "job-1/w1", now=3.05, reason="job killed")
    seen = run(fleet, 6.0, start=3.1)
    assert states_of(seen, "job-1/w1") == ["Completed"]
    assert fleet.story("job-1/w1")[-1][1:] == ("Completed", "stopped: job killed")
    assert fleet.live_workers("sim-0") == [] and fleet.agent_of("job-1/w1") == "sim-0"


def test_stopping_a_worker_the_agent_does_not_run_reports_it_completed():
    fleet = Fleet(AGENTS)
    fleet.stop("sim-2", "job-9/w1", now=0.0, reason="orphan")
    seen = run(fleet, 1.0)
    assert ("sim-2", "job-9/w1", "Completed") in [(a, k, s) for _, a, k, s in seen]


def test_a_failing_worker_reports_failed_with_a_reason():
    fleet = Fleet(AGENTS, seed=3, faults=Faults(fail_rate=0.5))
    fleet.launch("sim-0", Spec("job-1/w1"), now=0.0)
    seen = run(fleet, 20.0)
    assert states_of(seen, "job-1/w1") == ["StartInitiated", "Started", "Failed"]
    _, what, reason = fleet.story("job-1/w1")[-1]
    assert what == "Failed" and reason.startswith("simulated fault")


def test_a_silent_agent_stops_heartbeating_then_resumes_with_its_held_changes():
    fleet = Fleet(AGENTS, seed=4, timing=Timing(heartbeat_interval_s=1.0))
    fleet.launch("sim-0", Spec("job-1/w1"), now=0.0)
    run(fleet, 2.0)
    fleet.silence("sim-0", now=2.0, duration_s=5.0)
    fleet.stop("sim-0", "job-1/w1", now=3.0, reason="moved")  # obeyed, but not reported yet
    during = run(fleet, 6.9, start=2.1)
    assert "sim-0" not in {a for _, a, _, _ in during}
    assert fleet.is_silent("sim-0", 6.0) and not fleet.is_silent("sim-0", 7.0)
    after = fleet.tick(7.0)
    (report,) = [r for r in after if r.agent_id == "sim-0"]
    assert report.heartbeat and [(s.worker_key, s.status) for s in report.statuses] == [("job-1/w1", "Completed")]


def test_silence_faults_make_agents_skip_heartbeats():
    fleet = Fleet(AGENTS, seed=5, faults=Faults(silence_rate=0.2, silence_s=(3.0, 4.0)),
                  timing=Timing(heartbeat_interval_s=1.0))
    beats = {a: 0 for a in AGENTS}
    for i in range(601):
        for r in fleet.tick(i / 10):
            beats[r.agent_id] += r.heartbeat
    assert all(b < 50 for b in beats.values()), beats  # 60 s at 1 s would be 60 each


def test_same_seed_and_inputs_give_the_same_sequence_of_worker_states():
    faults = Faults(fail_rate=0.05, silence_rate=0.02, silence_s=(2.0, 5.0))
    first, second = scenario(11, faults), scenario(11, faults)
    assert first == second
    assert {s for *_, s in first} >= {"StartInitiated", "Started", "Completed", "Failed"}


def test_a_different_seed_gives_a_different_sequence_when_faults_are_on():
    faults = Faults(fail_rate=0.05, silence_rate=0.02, silence_s=(2.0, 5.0))
    assert scenario(11, faults) != scenario(12, faults)
