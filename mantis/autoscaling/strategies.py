"""The strategies, as small state machines fed one stage sample at a time.

Each strategy's ``propose(sample, size, now)`` returns a ``Proposal``: the size it wants
for the stage now (``size`` itself to hold), the rule that spoke, the inputs it used,
and when it holds, why.  They keep only their own memory (a rule's last ``of``
verdicts, the PID's integral and last error) and read no clock of their own: ``now``
is given, so a fixed clock drives them in tests.  Cooldown and min/max belong to the
stage (``stage_scaler``), not to a strategy; Clutch's own ``minSize``/``maxSize`` clamp
its proposal.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mantis.autoscaling.policy import ClutchStrategy, OneStepStrategy, RuleStrategy, Strategy
from mantis.autoscaling.sampling import StageSample

# Held-back reasons (a decision's ``heldBack``), one word each.
NO_DATA = "noData"
THRESHOLD = "threshold"     # a rule's value not crossed in count of the last of samples
DEAD_BAND = "deadBand"      # inside Clutch's rope, or One-step's hysteresis band
SETTLING = "settling"       # One-step: a new size not yet asked for stableSamples times in a row
COOLDOWN = "cooldown"
AT_MIN = "min"
AT_MAX = "max"


@dataclass(frozen=True)
class Proposal:
    """What one strategy wants: ``desired`` (== the current size to hold), the ``rule``
    (reason) that spoke, the ``inputs`` it read, ``held`` (why it holds, or None) and
    ``why`` (one sentence, in Mantis' words where Mantis has them)."""

    desired: int
    rule: str
    inputs: dict[str, Any]
    held: str | None
    why: str


def rule_value(strategy: RuleStrategy, sample: StageSample) -> float | None:
    """The value a rule compares with its thresholds (None: the sample has no such metric)."""
    if strategy.reason == "UserDefined":
        return sample.user.get(strategy.metric or "")
    return sample.values.get(strategy.reason)


@dataclass
class RuleState:
    """A threshold rule with its rolling verdicts (Mantis' rollingCount: count of of)."""

    strategy: RuleStrategy
    increment: int = 1
    decrement: int = 1
    verdicts: deque = field(default_factory=deque)  # "up" | "down" | "" per sample, newest last

    def propose(self, sample: StageSample, size: int, now: float) -> Proposal:
        s = self.strategy
        value = rule_value(s, sample)
        if value is None:
            return Proposal(size, s.reason, {}, NO_DATA, f"{s.reason}: no value in the sample")
        verdict = "up" if value > s.scale_up_above else "down" if value < s.scale_down_below else ""
        self.verdicts.append(verdict)
        while len(self.verdicts) > s.of:
            self.verdicts.popleft()
        ups, downs = self.verdicts.count("up"), self.verdicts.count("down")
        inputs = {"value": round(value, 3), "scaleUpAbovePct": s.scale_up_above,
                  "scaleDownBelowPct": s.scale_down_below, "above": ups, "below": downs,
                  "count": s.count, "of": s.of}
        if ups >= s.count:
            return Proposal(size + self.increment, s.reason, inputs, None,
                            f"{s.reason} with value {value:.2f} exceeded scaleUp threshold of "
                            f"{s.scale_up_above:.2f} in {ups} of the last {len(self.verdicts)} samples")
        if downs >= s.count:
            return Proposal(max(size - self.decrement, 0), s.reason, inputs, None,
                            f"{s.reason} with value {value:.2f} is below scaleDown threshold of "
                            f"{s.scale_down_below:.2f} in {downs} of the last {len(self.verdicts)} samples")
        return Proposal(size, s.reason, inputs, THRESHOLD,
                        f"{s.reason} with value {value:.2f}: {ups} above / {downs} below of the last "
                        f"{len(self.verdicts)}, {s.count} needed")

    def reset(self) -> None:
        """Forget the verdicts (after the stage was resized: they described the old size)."""
        self.verdicts.clear()


@dataclass
class ClutchState:
    """Clutch: a PID controller on one metric, with an integral that decays and a dead band."""

    strategy: ClutchStrategy
    integral: float = 0.0
    last_error: float | None = None

    def propose(self, sample: StageSample, size: int, now: float) -> Proposal:
        c = self.strategy
        value = sample.user.get(c.metric) if c.metric not in sample.values else sample.values[c.metric]
        if value is None:
            return Proposal(size, c.reason, {}, NO_DATA, f"Clutch: no {c.metric} value in the sample")
        error = value - c.set_point
        # The integral forgets a share of its past each step, so an old error fades out.
        self.integral = self.integral * (1.0 - c.integral_decay) + error
        derivative = 0.0 if self.last_error is None else error - self.last_error
        self.last_error = error
        inputs = {"metric": c.metric, "value": round(value, 3), "setPoint": c.set_point,
                  "rope": list(c.rope), "error": round(error, 3), "integral": round(self.integral, 3),
                  "derivative": round(derivative, 3)}
        if -c.rope[0] <= error <= c.rope[1]:
            return Proposal(size, c.reason, inputs, DEAD_BAND,
                            f"Clutch: {c.metric} {value:.2f} within the rope of set point {c.set_point:.2f}")
        control = c.kp * error + c.ki * self.integral + c.kd * derivative
        inputs["control"] = round(control, 4)
        desired = round(size * (1.0 + control))
        if desired == size:  # outside the rope: move at least one worker the error's way
            desired = size + (1 if error > 0 else -1)
        lo = c.min_size if c.min_size is not None else 0
        hi = c.max_size if c.max_size is not None else desired
        desired = max(lo, min(hi, desired, 10_000))
        held = None if desired != size else (AT_MAX if error > 0 else AT_MIN)
        return Proposal(desired, c.reason, inputs, held,
                        f"Clutch: {c.metric} {value:.2f} vs set point {c.set_point:.2f}, control {control:+.3f}")

    def reset(self) -> None:
        """Nothing to forget: the PID carries its integral across resizes (that is its point)."""


@dataclass
class OneStepState:
    """Flink-style one-step sizing from the stage's true processing rate."""

    strategy: OneStepStrategy
    min_busy_s: float = 0.05  # less busy time than this in the window measures no rate
    streak: tuple[int, int] = (0, 0)  # (size asked for, samples in a row asking for it)

    def propose(self, sample: StageSample, size: int, now: float) -> Proposal:
        s = self.strategy
        # What the source is asked to deliver: what reached the stage, plus the growth of
        # the backlog (held back by a slow stage), minus its shrinking (a source catching
        # up after a resize sends more than its steady rate: that is not demand to size for).
        demand = max(sample.input_rate + sample.backlog_rate, 0.0)
        inputs: dict[str, Any] = {
            "inputRate": round(sample.input_rate, 2), "backlogRate": round(sample.backlog_rate, 2),
            "demand": round(demand, 2), "busy": round(sample.busy, 3), "targetUtilization": s.target_utilization}
        if sample.busy_seconds < self.min_busy_s:
            if demand <= 0:
                return Proposal(max(size - 1, 0) if size > 1 else size, s.reason, inputs,
                                None if size > 1 else DEAD_BAND, "OneStep: no input, the stage is idle")
            return Proposal(size, s.reason, inputs, NO_DATA, "OneStep: too little busy time to measure a rate")
        # Events per busy second, over every worker's busy seconds: what one worker does
        # when it works all the time (Flink's "true processing rate").
        true_rate = sample.events / sample.busy_seconds
        inputs["trueRatePerWorker"] = round(true_rate, 2)
        wanted = max(math.ceil(demand / (true_rate * s.target_utilization) - 1e-9), 1)
        # The share of its time each worker would be busy at the current size.
        utilization = demand / (true_rate * size) if size > 0 else math.inf
        low, high = s.target_utilization - s.utilization_margin, s.target_utilization + s.utilization_margin
        inputs["sizeAtTarget"], inputs["utilization"] = wanted, round(utilization, 3)
        if utilization > high and wanted > size:
            want, why = wanted, (f"OneStep: demand {demand:.1f}/s over {true_rate:.1f}/s per worker at "
                                 f"{s.target_utilization:.0%} needs {wanted} workers")
        elif utilization < low and wanted < size:
            want, why = wanted, (f"OneStep: demand {demand:.1f}/s over {true_rate:.1f}/s per worker needs "
                                 f"only {wanted} workers at {s.target_utilization:.0%} ({utilization:.0%} busy "
                                 f"now)")
        else:
            self.streak = (size, 0)
            return Proposal(size, s.reason, inputs, DEAD_BAND,
                            f"OneStep: {size} workers fit demand {demand:.1f}/s ({true_rate:.1f}/s per worker, "
                            f"{utilization:.0%} busy)")
        # The same size asked for ``stable_samples`` times in a row, or it is a passing estimate.
        count = self.streak[1] + 1 if self.streak[0] == want else 1
        self.streak = (want, count)
        inputs["stable"] = f"{count} of {s.stable_samples}"
        if count < s.stable_samples:
            return Proposal(size, s.reason, inputs, SETTLING,
                            f"{why}; asked {count} of {s.stable_samples} times in a row")
        return Proposal(want, s.reason, inputs, None, why)

    def reset(self) -> None:
        """Forget the streak: it asked for a size from the old size."""
        self.streak = (0, 0)


StrategyState = RuleState | ClutchState | OneStepState


def strategy_state(strategy: Strategy, increment: int = 1, decrement: int = 1) -> StrategyState:
    """A fresh state machine for ``strategy``."""
    if isinstance(strategy, RuleStrategy):
        return RuleState(strategy, increment, decrement)
    if isinstance(strategy, ClutchStrategy):
        return ClutchState(strategy)
    return OneStepState(strategy)
