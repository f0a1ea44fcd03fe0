"""One stage's autoscaler: its strategies, its cooldown and bounds, and its decisions.

``StageScaler.step(sample, size, now)`` asks every strategy, picks the answer (any
strategy that wants to grow wins, taking the largest size; the stage shrinks only when
no strategy holds or grows, to the largest of the smaller sizes), clamps it to the
policy's ``min``/``max`` and respects the cooldown since the last resize (or since the
scaler started, so a new stage warms up first).  Every step is a ``Decision``: the
sample, each strategy's proposal, the old and new size, and when nothing changes, why
(``heldBack``: noData, threshold, deadBand, cooldown, min, max; resizing from ``hold``).  Nothing here reads a
clock or does I/O.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mantis.autoscaling.policy import StageScalingPolicy
from mantis.autoscaling.sampling import StageSample
from mantis.autoscaling.strategies import (
    AT_MAX,
    AT_MIN,
    COOLDOWN,
    NO_DATA,
    Proposal,
    StrategyState,
    strategy_state,
)

SCALE_UP, SCALE_DOWN, HOLD = "scaleUp", "scaleDown", "hold"


@dataclass(frozen=True)
class Decision:
    """One step of one stage's autoscaler (``to_json`` is what the Job Master serves)."""

    at: float
    stage: int
    action: str            # scaleUp | scaleDown | hold
    old_size: int
    new_size: int
    desired_size: int
    rule: str              # the strategy (reason) whose proposal was taken, "" if none
    reason: str            # one sentence: the rule's, or why it was held back
    held_back: str | None  # noData | threshold | deadBand | cooldown | min | max
    sample: dict[str, Any] = field(default_factory=dict)
    proposals: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """camelCase form for the Job Master's endpoint and the job's events."""
        return {"at": self.at, "stage": self.stage, "action": self.action, "oldSize": self.old_size,
                "newSize": self.new_size, "desiredSize": self.desired_size, "rule": self.rule,
                "reason": self.reason, "heldBack": self.held_back, "sample": self.sample,
                "proposals": self.proposals}


def _proposal_json(p: Proposal) -> dict[str, Any]:
    return {"rule": p.rule, "desired": p.desired, "held": p.held, "why": p.why, "inputs": p.inputs}


class StageScaler:
    """The autoscaler of one stage under ``policy``; ``started_at`` starts the first cooldown."""

    def __init__(self, policy: StageScalingPolicy, started_at: float, history: int = 200):
        self.policy = policy
        self.states: dict[str, StrategyState] = {
            reason: strategy_state(s, policy.increment, policy.decrement) for reason, s in policy.strategies.items()}
        self.last_resize_at = started_at
        self.decisions: deque[Decision] = deque(maxlen=history)

    def cooldown_s(self) -> float:
        """The stage's cooldown (a Clutch strategy's own cooldown wins when it has one)."""
        for state in self.states.values():
            own = getattr(state.strategy, "cooldown_s", None)
            if own is not None:
                return float(own)
        return self.policy.cooldown_s

    def step(self, sample: StageSample | None, size: int, now: float) -> Decision:
        """Decide for ``sample`` with the stage at ``size`` workers (see the module docstring)."""
        if sample is None:
            return self._record(Decision(now, self.policy.stage, HOLD, size, size, size, "",
                                         "no metrics from the stage's workers yet", NO_DATA))
        proposals = [state.propose(sample, size, now) for state in self.states.values()]
        ups = [p for p in proposals if p.desired > size]
        downs = [p for p in proposals if p.desired < size]
        chosen: Proposal | None = None
        if ups:
            chosen = max(ups, key=lambda p: p.desired)
        elif downs and len(downs) == len(proposals):
            chosen = max(downs, key=lambda p: p.desired)
        base: dict[str, Any] = {"sample": sample.to_json(), "proposals": [_proposal_json(p) for p in proposals]}
        if chosen is None:
            held = next((p for p in proposals if p.held), proposals[0] if proposals else None)
            return self._record(Decision(now, self.policy.stage, HOLD, size, size, size,
                                         held.rule if held else "", held.why if held else "no strategy",
                                         held.held if held else NO_DATA, **base))
        lo, hi = self.policy.min, self.policy.max
        new = max(lo, min(hi, chosen.desired))
        if new == size:
            bound = AT_MAX if chosen.desired > size else AT_MIN
            return self._record(Decision(
                now, self.policy.stage, HOLD, size, size, chosen.desired, chosen.rule,
                f"{chosen.why}; held at the stage's {bound} of {hi if bound == AT_MAX else lo}", bound, **base))
        cooldown = self.cooldown_s()
        if now - self.last_resize_at < cooldown:
            return self._record(Decision(
                now, self.policy.stage, HOLD, size, size, new, chosen.rule,
                f"{chosen.why}; in cooldown ({now - self.last_resize_at:.0f}s of {cooldown:.0f}s)",
                COOLDOWN, **base))
        self.last_resize_at = now
        for state in self.states.values():
            state.reset()
        return self._record(Decision(now, self.policy.stage, SCALE_UP if new > size else SCALE_DOWN,
                                     size, new, chosen.desired, chosen.rule, chosen.why, None, **base))

    def hold(self, now: float, size: int, held_back: str, reason: str) -> Decision:
        """Record a step the caller holds back itself (``resizing``: the stage is not all
        started at its size yet), without asking the strategies."""
        return self._record(Decision(now, self.policy.stage, HOLD, size, size, size, "", reason, held_back))

    def _record(self, decision: Decision) -> Decision:
        self.decisions.append(decision)
        return decision
