"""A stage's scaling policy, in Mantis' JSON shape, read into typed definitions.

``{"stage", "min", "max", "increment", "decrement", "coolDownSecs", "strategies":
{<reason>: {"reason", "scaleDownBelowPct", "scaleUpAbovePct", "rollingCount": {"count",
"of"}}}}`` as in Mantis' StageScalingPolicy.  Reasons are Mantis' (CPU, Memory, Network,
DataDrop, RPS, UserDefined, with ``"metric"`` naming the user's gauge) plus two
controllers: ``Clutch`` (a PID controller: ``setPoint``, ``rope``, ``kp``, ``ki``,
``kd``, ``integralDecay``, ``minSize``, ``maxSize``, ``cooldownSecs``, and the ``metric``
it holds at the set point, CPU by default) and ``OneStep`` (Flink-style sizing:
``targetUtilization``, ``utilizationMargin``, ``stableSamples``).  A stage is autoscaled (its job gets a Job
Master) when its policy has ``strategies``; an empty ``strategies`` object gets
``OneStep`` with its defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mantis.model import codec
from mantis.model.codec import ValidationError

RULE_REASONS = ("CPU", "Memory", "Network", "DataDrop", "RPS", "UserDefined")
CLUTCH = "Clutch"
ONE_STEP = "OneStep"
REASONS = (*RULE_REASONS, CLUTCH, ONE_STEP)

DEFAULT_COOLDOWN_S = 30.0
DEFAULT_TARGET_UTILIZATION = 0.7
DEFAULT_UTILIZATION_MARGIN = 0.15
DEFAULT_STABLE_SAMPLES = 3


@dataclass(frozen=True)
class RuleStrategy:
    """A threshold rule: scale up when the reason's value is above ``scale_up_above`` in
    ``count`` of the last ``of`` samples, down when below ``scale_down_below`` likewise."""

    reason: str
    scale_down_below: float
    scale_up_above: float
    count: int = 1
    of: int = 1
    metric: str | None = None  # UserDefined: the name of the job's gauge or counter


@dataclass(frozen=True)
class ClutchStrategy:
    """A PID controller holding ``metric`` (a reason's value) at ``set_point``; no action
    while the error is inside the dead band ``rope`` (below, above the set point)."""

    set_point: float
    rope: tuple[float, float] = (0.0, 0.0)
    kp: float = 0.01
    ki: float = 0.0
    kd: float = 0.0
    integral_decay: float = 0.1
    min_size: int | None = None
    max_size: int | None = None
    cooldown_s: float | None = None
    metric: str = "CPU"
    reason: str = CLUTCH


@dataclass(frozen=True)
class OneStepStrategy:
    """Flink-style: size = demand / (true per-worker rate x ``target_utilization``), taken
    only when the utilisation at the current size is outside ``target_utilization`` ±
    ``utilization_margin`` (a dead band: a size rounded up is not undone);
    a new size only once ``stable_samples`` samples in a row ask for it (a window that
    straddles a step in the load would otherwise size for half of the step)."""

    target_utilization: float = DEFAULT_TARGET_UTILIZATION
    utilization_margin: float = DEFAULT_UTILIZATION_MARGIN
    stable_samples: int = DEFAULT_STABLE_SAMPLES
    reason: str = ONE_STEP


Strategy = RuleStrategy | ClutchStrategy | OneStepStrategy


@dataclass(frozen=True)
class StageScalingPolicy:
    """One stage's policy: bounds, steps, cooldown and strategies (by reason)."""

    stage: int
    min: int = 1
    max: int = 10_000
    increment: int = 1
    decrement: int = 1
    cooldown_s: float = DEFAULT_COOLDOWN_S
    strategies: dict[str, Strategy] = field(default_factory=dict)


def _number(data: dict, name: str, default: Any = None, low: float | None = None) -> Any:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, str):  # Mantis' UI and tools send numbers as strings ("min": "1")
        try:
            value = codec.number()(value, f"scalingPolicy.{name}")
        except ValidationError:
            raise ValidationError(f"scalingPolicy.{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"scalingPolicy.{name} must be a number, got {value!r}")
    if low is not None and value < low:
        raise ValidationError(f"scalingPolicy.{name} must be at least {low}, got {value!r}")
    return value


def _strategy(reason: str, data: Any) -> Strategy:
    if not isinstance(data, dict):
        raise ValidationError(f"scalingPolicy.strategies.{reason} must be an object")
    if data.get("reason", reason) != reason:
        raise ValidationError(f"scalingPolicy.strategies.{reason} names reason {data['reason']!r}")
    if reason in RULE_REASONS:
        rolling = data.get("rollingCount") or {"count": 1, "of": 1}
        count, of = int(_number(rolling, "count", 1, 1)), int(_number(rolling, "of", 1, 1))
        if count > of:
            raise ValidationError(f"scalingPolicy.strategies.{reason}.rollingCount: count {count} > of {of}")
        down, up = _number(data, "scaleDownBelowPct", 0.0), _number(data, "scaleUpAbovePct", 100.0)
        if down > up:
            raise ValidationError(f"scalingPolicy.strategies.{reason}: scaleDownBelowPct above scaleUpAbovePct")
        metric = data.get("metric")
        if reason == "UserDefined" and not isinstance(metric, str):
            raise ValidationError("scalingPolicy.strategies.UserDefined needs \"metric\": the name of the job's metric")
        return RuleStrategy(reason, float(down), float(up), count, of, metric)
    if reason == CLUTCH:
        rope = data.get("rope", 0.0)
        if isinstance(rope, (int, float)) and not isinstance(rope, bool):
            rope_pair = (float(rope), float(rope))
        elif isinstance(rope, list) and len(rope) == 2:
            rope_pair = (float(rope[0]), float(rope[1]))
        else:
            raise ValidationError("scalingPolicy.strategies.Clutch.rope must be a number or [below, above]")
        metric = str(data.get("metric", "CPU"))
        min_size, max_size = _number(data, "minSize", None, 0), _number(data, "maxSize", None, 0)
        cooldown = _number(data, "cooldownSecs", None, 0)
        return ClutchStrategy(float(_number(data, "setPoint", 50.0)), rope_pair,
                              float(_number(data, "kp", 0.01)), float(_number(data, "ki", 0.0)),
                              float(_number(data, "kd", 0.0)), float(_number(data, "integralDecay", 0.1, 0)),
                              None if min_size is None else int(min_size),
                              None if max_size is None else int(max_size),
                              None if cooldown is None else float(cooldown), metric)
    if reason == ONE_STEP:
        target = float(_number(data, "targetUtilization", DEFAULT_TARGET_UTILIZATION, 0.01))
        if target > 1:
            raise ValidationError("scalingPolicy.strategies.OneStep.targetUtilization must be at most 1")
        return OneStepStrategy(target, float(_number(data, "utilizationMargin", DEFAULT_UTILIZATION_MARGIN, 0)),
                               int(_number(data, "stableSamples", DEFAULT_STABLE_SAMPLES, 1)))
    raise ValidationError(f"scalingPolicy.strategies: unknown reason {reason!r} (known: {', '.join(REASONS)})")


def parse_policy(stage: int, data: dict | None) -> StageScalingPolicy:
    """The policy of scalable stage ``stage`` from its ``scalingPolicy`` JSON (None: defaults).

    Raises ValidationError naming the field at fault.  No strategy: ``OneStep``.
    """
    data = data or {}
    lo, hi = int(_number(data, "min", 1, 0)), int(_number(data, "max", 10_000, 0))
    if lo > hi:
        raise ValidationError(f"scalingPolicy: min {lo} above max {hi}")
    strategies_json = data.get("strategies") or {}
    if not isinstance(strategies_json, dict):
        raise ValidationError("scalingPolicy.strategies must be an object keyed by reason")
    strategies = {reason: _strategy(reason, s) for reason, s in strategies_json.items()}
    if not strategies:
        strategies = {ONE_STEP: OneStepStrategy()}
    return StageScalingPolicy(stage=stage, min=lo, max=hi,
                              increment=int(_number(data, "increment", 1, 1)),
                              decrement=int(_number(data, "decrement", 1, 1)),
                              cooldown_s=float(_number(data, "coolDownSecs", DEFAULT_COOLDOWN_S, 0)),
                              strategies=strategies)
