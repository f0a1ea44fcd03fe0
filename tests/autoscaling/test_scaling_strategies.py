"""The strategies and the stage scaler, driven by synthetic samples on a fixed clock."""
import pytest

from mantis.autoscaling.policy import ClutchStrategy, OneStepStrategy, parse_policy
from mantis.autoscaling.sampling import Machine, MetricWindow, StageSample
from mantis.autoscaling.stage_scaler import HOLD, SCALE_DOWN, SCALE_UP, StageScaler
from mantis.autoscaling.strategies import ClutchState, OneStepState
from mantis.model.codec import ValidationError


def cpu(value: float, at: float = 0.0) -> StageSample:
    return StageSample(stage=1, at=at, workers=2, values={"CPU": value})


def rule_policy(**over) -> dict:
    policy = {"stage": 1, "min": 1, "max": 5, "increment": 1, "decrement": 1, "coolDownSecs": 60,
              "strategies": {"CPU": {"reason": "CPU", "scaleDownBelowPct": 20, "scaleUpAbovePct": 75,
                                     "rollingCount": {"count": 3, "of": 5}}}}
    policy.update(over)
    return policy


def test_a_rule_fires_only_when_its_threshold_is_crossed_in_count_of_the_last_of_samples():
    scaler = StageScaler(parse_policy(1, rule_policy()), started_at=-1000.0)
    actions = [scaler.step(cpu(v, t), 2, float(t)) for t, v in enumerate([80, 50, 90, 50])]
    assert [d.action for d in actions] == [HOLD] * 4
    assert all(d.held_back == "threshold" for d in actions)
    fired = scaler.step(cpu(85, 4), 2, 4.0)  # the 3rd value above 75 in the last 5
    assert (fired.action, fired.old_size, fired.new_size, fired.rule) == (SCALE_UP, 2, 3, "CPU")
    assert "CPU with value 85.00 exceeded scaleUp threshold of 75.00 in 3 of the last 5" in fired.reason
    assert fired.sample["values"]["CPU"] == 85 and fired.proposals[0]["inputs"]["above"] == 3


def test_a_rule_scales_down_by_its_decrement_when_below_in_count_of_of():
    scaler = StageScaler(parse_policy(1, rule_policy(decrement=2)), started_at=-1000.0)
    decisions = [scaler.step(cpu(10, t), 4, float(t)) for t in range(3)]
    assert [d.action for d in decisions] == [HOLD, HOLD, SCALE_DOWN]
    assert decisions[-1].new_size == 2 and "below scaleDown threshold of 20.00" in decisions[-1].reason


def test_the_cooldown_holds_a_fired_rule_back_and_says_so():
    scaler = StageScaler(parse_policy(1, rule_policy()), started_at=0.0)  # count 3 of 5, 60 s
    decisions = [scaler.step(cpu(90, t), 2, float(t)) for t in (10, 11, 12)]
    assert decisions[-1].action == HOLD and decisions[-1].held_back == "cooldown"
    assert decisions[-1].desired_size == 3 and "in cooldown (12s of 60s)" in decisions[-1].reason
    later = scaler.step(cpu(90, 61), 2, 61.0)
    assert later.action == SCALE_UP and later.new_size == 3
    # the verdicts described the old size: after the resize the rule counts afresh
    again = scaler.step(cpu(90, 200), 3, 200.0)
    assert again.action == HOLD and again.held_back == "threshold"


def test_the_stage_min_and_max_clamp_and_hold_with_their_name():
    policy_rule = {"count": 1, "of": 1}
    scaler = StageScaler(parse_policy(1, rule_policy(max=3, increment=4, strategies={"CPU": {
        "reason": "CPU", "scaleDownBelowPct": 20, "scaleUpAbovePct": 75, "rollingCount": policy_rule}})),
        started_at=-1000.0)
    grown = scaler.step(cpu(99), 2, 0.0)
    assert (grown.action, grown.new_size, grown.desired_size) == (SCALE_UP, 3, 6)
    held = scaler.step(cpu(99), 3, 100.0)
    assert (held.action, held.held_back, held.new_size) == (HOLD, "max", 3)
    low = scaler.step(cpu(1), 1, 200.0)
    assert (low.action, low.held_back) == (HOLD, "min")


def test_user_defined_rules_read_the_jobs_own_metric():
    policy = parse_policy(1, {"min": 1, "max": 4, "coolDownSecs": 0, "strategies": {"UserDefined": {
        "reason": "UserDefined", "metric": "pendingOrders", "scaleDownBelowPct": 10, "scaleUpAbovePct": 100,
        "rollingCount": {"count": 1, "of": 1}}}})
    scaler = StageScaler(policy, started_at=0.0)
    d = scaler.step(StageSample(stage=1, at=1, workers=1, user={"pendingOrders": 150.0}), 1, 1.0)
    assert d.action == SCALE_UP and d.rule == "UserDefined"
    missing = scaler.step(StageSample(stage=1, at=2, workers=1), 2, 2.0)
    assert missing.held_back == "noData"


def test_no_sample_is_held_back_for_no_data():
    d = StageScaler(parse_policy(1, None), started_at=0.0).step(None, 2, 5.0)
    assert (d.action, d.held_back) == (HOLD, "noData")


def test_clutch_holds_inside_its_rope_and_acts_outside_it():
    clutch = ClutchState(ClutchStrategy(set_point=60.0, rope=(5.0, 5.0), kp=0.02, ki=0.0, kd=0.0,
                                        min_size=1, max_size=8))
    inside = clutch.propose(cpu(63), 4, 0.0)
    assert inside.desired == 4 and inside.held == "deadBand"
    above = clutch.propose(cpu(90), 4, 1.0)  # error 30, control +0.6 -> 4 * 1.6 = 6.4
    assert above.desired == 6 and above.held is None and above.inputs["error"] == 30
    below = clutch.propose(cpu(20), 4, 2.0)  # error -40, control -0.8 -> 0.8 -> at least one worker less
    assert below.desired == 1
    capped = clutch.propose(cpu(400), 6, 3.0)
    assert capped.desired == 8


def test_clutch_integral_decays_and_accumulates_a_steady_error():
    c = ClutchState(ClutchStrategy(set_point=50.0, rope=(0.0, 0.0), kp=0.0, ki=0.01, kd=0.0,
                                   integral_decay=0.5))
    for t in range(10):
        c.propose(cpu(60), 10, float(t))
    # a steady error of 10 with half of the past forgotten per step tends to 20
    assert c.integral == pytest.approx(20.0, abs=0.05)
    assert c.propose(cpu(60), 10, 11.0).desired == 12  # 10 * (1 + 0.01 * ~20)


def test_clutch_configured_in_a_policy_uses_its_own_cooldown():
    policy = parse_policy(1, {"min": 1, "max": 10, "coolDownSecs": 300, "strategies": {"Clutch": {
        "reason": "Clutch", "setPoint": 60, "rope": [5, 10], "kp": 0.05, "cooldownSecs": 5}}})
    scaler = StageScaler(policy, started_at=0.0)
    assert scaler.step(cpu(90, 3), 2, 3.0).held_back == "cooldown"
    assert scaler.step(cpu(90, 6), 2, 6.0).action == SCALE_UP


def busy_sample(input_rate: float, per_worker: float, workers: int, window: float = 10.0,
                backlog_rate: float = 0.0) -> StageSample:
    events = input_rate * window
    busy_s = events / per_worker
    return StageSample(stage=2, at=0, workers=workers, input_rate=input_rate, events=events,
                       busy_seconds=busy_s, busy=busy_s / window / workers, backlog_rate=backlog_rate)


def test_one_step_sizes_to_demand_over_true_rate_at_target_utilisation_in_one_step():
    one = OneStepState(OneStepStrategy(target_utilization=0.7, stable_samples=1))
    p = one.propose(busy_sample(400, per_worker=200, workers=1), 1, 0.0)
    assert p.desired == 3 and p.inputs["trueRatePerWorker"] == 200  # 400 / (200 * 0.7) = 2.86
    # held back by a source behind its schedule: the backlog's growth is demand too
    p = one.propose(busy_sample(200, per_worker=200, workers=1, backlog_rate=200), 1, 0.0)
    assert p.desired == 3
    # catching up after a resize the source sends more than its rate: sized for the rate, not more
    p = one.propose(busy_sample(460, per_worker=200, workers=3, backlog_rate=-60), 3, 0.0)
    assert p.desired == 3 and p.inputs["demand"] == 400


def test_one_step_has_a_dead_band_so_steady_load_does_not_flap():
    one = OneStepState(OneStepStrategy(target_utilization=0.7, utilization_margin=0.15, stable_samples=1))
    # 3 workers for 400/s at 200/s each: 67 % busy, inside 55..85 %: keep 3
    p = one.propose(busy_sample(400, per_worker=200, workers=3), 3, 0.0)
    assert p.desired == 3 and p.held == "deadBand" and p.inputs["utilization"] == 0.667
    # a size rounded up is not undone: 1000/s needs 7.14 workers at 70 %, so 8, which are 62.5 % busy
    p = one.propose(busy_sample(1000, per_worker=208, workers=8), 8, 0.0)
    assert p.desired == 8 and p.held == "deadBand"
    # 80 % busy is inside the band too, though 70 % would take one more worker
    assert one.propose(busy_sample(480, per_worker=200, workers=3), 3, 0.0).held == "deadBand"
    # a drop to 100/s: 17 % busy, below the band -> the size at 70 %: 1
    p = one.propose(busy_sample(100, per_worker=200, workers=3), 3, 0.0)
    assert p.desired == 1 and "needs only 1 workers at 70% (17% busy now)" in p.why


def test_one_step_is_the_default_strategy_and_idle_stages_shrink_one_by_one():
    policy = parse_policy(2, {"min": 1, "max": 6, "coolDownSecs": 10})
    assert list(policy.strategies) == ["OneStep"]
    scaler = StageScaler(policy, started_at=0.0)
    first, second, third = (scaler.step(busy_sample(400, per_worker=200, workers=1), 1, t) for t in (11.0, 12.0, 13.0))
    assert first.held_back == second.held_back == "settling" and "asked 2 of 3 times" in second.reason
    assert (third.action, third.new_size, third.rule) == (SCALE_UP, 3, "OneStep")
    idle = StageSample(stage=2, at=30, workers=3)
    assert scaler.step(idle, 3, 30.0).new_size == 2
    no_rate = StageSample(stage=2, at=50, workers=1, input_rate=5.0, events=50, busy_seconds=0.001)
    assert scaler.step(no_rate, 1, 50.0).held_back == "noData"


def test_one_step_acts_only_on_a_size_asked_for_stable_samples_times_in_a_row():
    # a window straddling a load step first asks for 2, then settles on 3: it goes to 3 in one step
    one = OneStepState(OneStepStrategy(target_utilization=0.7, stable_samples=3))
    asked = [one.propose(busy_sample(rate, per_worker=200, workers=1), 1, float(t)) for t, rate in
             enumerate([200, 250, 400, 400, 400])]
    assert [p.desired for p in asked] == [1, 1, 1, 1, 3]
    assert [p.held for p in asked[:4]] == ["settling"] * 4 and asked[3].inputs["stable"] == "2 of 3"
    # back within the band, the streak is forgotten
    assert one.propose(busy_sample(180, per_worker=200, workers=2), 2, 9.0).held == "deadBand"
    assert one.propose(busy_sample(400, per_worker=200, workers=2), 2, 10.0).inputs["stable"] == "1 of 3"


@pytest.mark.parametrize("bad, message", [
    ({"min": 5, "max": 2}, "min 5 above max 2"),
    ({"strategies": {"Disk": {}}}, "unknown reason 'Disk'"),
    ({"strategies": {"CPU": {"rollingCount": {"count": 6, "of": 5}}}}, "count 6 > of 5"),
    ({"strategies": {"UserDefined": {"scaleUpAbovePct": 5}}}, "needs \"metric\""),
    ({"coolDownSecs": "soon"}, "coolDownSecs must be a number"),
])
def test_a_malformed_policy_is_refused_by_field(bad, message):
    with pytest.raises(ValidationError, match=message):
        parse_policy(1, bad)


def test_the_window_turns_counters_into_rates_shares_and_percentages():
    w = MetricWindow(window_s=10.0)
    for key in ("a", "b"):
        w.add(key, 2, 0.0, {"eventsIn": 0, "busySeconds": 0.0, "cpuSeconds": 0.0, "rssMB": 100,
                            "droppedEvents": 0, "eventsOut": 0, "user": {"q": 1}})
        w.add(key, 2, 10.0, {"eventsIn": 1000, "busySeconds": 5.0, "cpuSeconds": 2.0, "rssMB": 200,
                             "droppedEvents": 10, "eventsOut": 990, "user": {"q": 3}})
    w.add("src", 1, 0.0, {"user": {"backlog": 0}, "eventsOut": 100, "deliveredEvents": 100})
    # 500 more behind schedule at the source, 300 published and not yet received by stage 2
    w.add("src", 1, 10.0, {"user": {"backlog": 500}, "eventsOut": 2400, "deliveredEvents": 2000,
                           "droppedEvents": 100})
    s = w.sample(2, 10.0, Machine(cpu_cores=2, memory_mb=1000))
    assert s is not None and s.workers == 2
    assert s.input_rate == 200 and s.events == 2000 and s.busy_seconds == 10 and s.busy == 0.5
    assert s.values["CPU"] == pytest.approx(10.0) and s.values["Memory"] == pytest.approx(20.0)
    assert s.values["DataDrop"] == pytest.approx(1.0) and s.values["RPS"] == 100
    assert s.user == {"q": 3.0} and s.backlog_rate == 80
    w.keep_only({"a"})
    assert w.sample(2, 10.0).workers == 1
    assert w.sample(3, 10.0) is None
