"""Placement constraints: parsed from job definitions, evaluated against agents.

Two vocabularies are accepted (see :func:`parse_constraint`):

* Mantis names, as strings: ``UniqueHost`` (one worker of a job per host),
  ``UniqueHostPerStage``, ``ExclusiveHost`` (the worker gets an agent to itself),
  ``ZoneBalance`` (spread a stage's workers evenly over the ``zone`` attribute) and the
  ``M<n>Cluster`` affinity names, which are accepted and ignored.
* Marathon operators, as ``[field, OPERATOR]`` or ``[field, OPERATOR, value]`` (or the
  string ``"field:OPERATOR:value"``): UNIQUE, CLUSTER, GROUP_BY, MAX_PER, LIKE, UNLIKE,
  IS.  ``field`` is ``hostname`` / ``@hostname`` or an agent attribute name.

An agent lacking the field's attribute passes only UNLIKE.  Marathon operators count
the instances of the whole job; ``UniqueHostPerStage`` and ``ZoneBalance`` count the
instances of the job's stage, as Mantis does.

GROUP_BY without a number (and Mantis' ZoneBalance, its per-stage form on ``zone``) is
a balancing rule rather than a filter: of the agents that could take the worker (enough
resources, enabled, every other hard constraint met), the matcher keeps those whose
value holds the fewest of the job's instances, so a value whose agents are full,
disabled or draining never holds the others back.  :meth:`Constraint.bind_balance`
gives the matcher that level per agent.  GROUP_BY with a number is Marathon's filter
(see :class:`GroupBy`).  IS compares two numbers as numbers (``8`` is ``8.0``).

A constraint is evaluated in two steps so the matcher's hot loop stays cheap:
:meth:`Constraint.bind` is called once per run of identical requests and returns a
plain ``check(agent) -> bool`` closure over the pool's live co-placement counters
(which already include the assignments made earlier in the same round);
:meth:`Constraint.bind_score` does the same for soft use and returns
``score(agent) -> float`` in 0..1.  Either may return ``None``: "always passes /
always 1.0", which the matcher skips entirely.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOSTNAME = "@hostname"  # the pseudo-attribute holding an agent's host name

Check = Callable[[Any], bool]
Score = Callable[[Any], float]


def _display(attribute: str) -> str:
    return "hostname" if attribute == HOSTNAME else attribute


@dataclass(frozen=True, slots=True)
class Balance:
    """A balancing rule bound to one request: ``level(agent)`` is how many of the job's
    instances the agent's value already holds (lower is better); ``floor()`` the lowest
    level any registered value has now, so the matcher may stop searching once it finds
    an agent at that level (it reads live counts: call it per search, not per group)."""

    level: Callable[[Any], int]
    floor: Callable[[], int]


@dataclass(frozen=True, kw_only=True)
class Constraint:
    """A placement rule.  Frozen and comparable, so equal specs make equal constraints
    (the matcher groups identical requests by their constraints).

    ``label`` is the rule in the user's own vocabulary, used in pending reasons.
    """

    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self._default_label())

    def _default_label(self) -> str:
        return type(self).__name__

    @property
    def counts_instances(self) -> bool:
        """Whether the verdict depends on where the job's instances already are (and so
        differs between jobs); False for rules on an agent's own attributes."""
        return False

    def bind(self, request, pool) -> Check | None:
        """A ``check(agent) -> bool`` for ``request`` against ``pool``'s current placements,
        or ``None`` when the constraint never rejects an agent."""
        return None

    def bind_balance(self, request, pool) -> Balance | None:
        """For a balancing rule, the :class:`Balance` the matcher minimises over the agents
        that could take ``request``; ``None`` (the default) for a plain filter."""
        return None

    def bind_score(self, request, pool) -> Score | None:
        """A ``score(agent) -> float`` in 0..1 for soft use (1 = best), or ``None`` when
        every agent scores 1.  By default: 1 where the hard check passes, else 0."""
        check = self.bind(request, pool)
        if check is None:
            return None
        return lambda agent: 1.0 if check(agent) else 0.0

    def failure(self, agent) -> str:
        """Why ``agent`` failed this constraint, phrased to follow "N agents ..."."""
        return f"failed {self.label}"


@dataclass(frozen=True, kw_only=True)
class AttributeConstraint(Constraint):
    """A constraint on one agent attribute (or the host name, as ``@hostname``).

    ``per_stage`` makes co-placement counts cover the request's stage instead of its
    whole job.
    """

    attribute: str
    per_stage: bool = False

    operator = ""  # the Marathon operator name, for labels

    def _default_label(self) -> str:
        argument = self._argument()
        return f"{self.operator} {_display(self.attribute)}" + ("" if argument is None else f" {argument}")

    def _argument(self):
        return None

    def failure(self, agent) -> str:
        if self.attribute not in agent.values:
            return f"lacked attribute {_display(self.attribute)}"
        return f"failed {self.label}"

    @property
    def counts_instances(self) -> bool:
        return True

    def _counts(self, request, pool):
        return pool.value_counts(request.job_id, request.stage if self.per_stage else None, self.attribute)


@dataclass(frozen=True, kw_only=True)
class Unique(AttributeConstraint):
    """At most one instance per attribute value.  Soft use prefers values with fewer
    instances (spread): score ``1 / (1 + instances there)``."""

    operator = "UNIQUE"

    def bind(self, request, pool) -> Check:
        counts, attribute = self._counts(request, pool), self.attribute

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            return value is not None and value not in counts
        return check

    def bind_score(self, request, pool) -> Score:
        counts, attribute = self._counts(request, pool), self.attribute

        def score(agent) -> float:
            value = agent.values.get(attribute)
            return 0.0 if value is None else 1.0 / (1 + counts.get(value, 0))
        return score


@dataclass(frozen=True, kw_only=True)
class Cluster(AttributeConstraint):
    """All instances on one attribute value: ``value`` if given, otherwise the value
    the job's first placed instance got."""

    value: str | None = None

    operator = "CLUSTER"

    @property
    def counts_instances(self) -> bool:
        return self.value is None

    def _argument(self):
        return self.value

    def bind(self, request, pool) -> Check:
        attribute, wanted = self.attribute, self.value
        if wanted is not None:
            return lambda agent: agent.values.get(attribute) == wanted
        counts = self._counts(request, pool)

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            # ``counts`` only holds values with instances: empty means nothing placed yet.
            return value is not None and (not counts or value in counts)
        return check


@dataclass(frozen=True, kw_only=True)
class GroupBy(AttributeConstraint):
    """Spread instances over the attribute's values.

    With ``groups`` (Marathon's number), Marathon's documented rule: a value holding no
    instance yet is always acceptable (a new group, the smallest there is); a value
    holding some is acceptable only once at least ``groups`` values hold instances, and
    only if it holds as few as the smallest of them.  So the first ``groups`` instances
    open ``groups`` groups, and a new instance then goes only to one of the smallest.

    Without ``groups``: a balancing rule (see the module docstring).  Any agent with the
    attribute passes the check; the matcher then takes, among the agents that could take
    the worker, one on the value with the fewest of the job's instances.  Soft use
    scores ``1 / (1 + instances there - fewest on any value)``.
    """

    groups: int | None = None

    operator = "GROUP_BY"

    def _argument(self):
        return self.groups

    def bind(self, request, pool) -> Check:
        attribute = self.attribute
        if self.groups is None:
            return lambda agent: attribute in agent.values
        counts, groups = self._counts(request, pool), self.groups

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            if value is None:
                return False
            held = counts.get(value)
            return held is None or (len(counts) >= groups and held == counts.smallest())
        return check

    def bind_balance(self, request, pool) -> Balance | None:
        if self.groups is not None:
            return None
        counts, attribute = self._counts(request, pool), self.attribute
        values = pool.attribute_values(attribute)

        def level(agent) -> int:
            return counts.get(agent.values.get(attribute), 0)

        def floor() -> int:
            # A registered value with no instance yet is the lowest level there is.
            return counts.smallest() if len(counts) >= len(values) else 0
        return Balance(level, floor)

    def bind_score(self, request, pool) -> Score:
        if self.groups is not None:
            return super().bind_score(request, pool)  # type: ignore[return-value]
        counts, attribute = self._counts(request, pool), self.attribute
        values = len(pool.attribute_values(attribute))

        def score(agent) -> float:  # the Balance's level and floor, inlined: a hot path
            value = agent.values.get(attribute)
            if value is None:
                return 0.0
            fewest = counts.smallest() if len(counts) >= values else 0
            return 1.0 / (1 + counts.get(value, 0) - fewest)
        return score


@dataclass(frozen=True, kw_only=True)
class MaxPer(AttributeConstraint):
    """At most ``limit`` instances per attribute value."""

    limit: int

    operator = "MAX_PER"

    def _argument(self):
        return self.limit

    def bind(self, request, pool) -> Check:
        counts, attribute, limit = self._counts(request, pool), self.attribute, self.limit

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            return value is not None and counts.get(value, 0) < limit
        return check


@dataclass(frozen=True, kw_only=True)
class Like(AttributeConstraint):
    """The attribute's whole value matches the regular expression ``pattern``."""

    pattern: str
    # Set in __post_init__ (always, so no default is needed).
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False, hash=False)

    operator = "LIKE"

    @property
    def counts_instances(self) -> bool:
        return False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern))
        super().__post_init__()

    def _argument(self):
        return self.pattern

    def bind(self, request, pool) -> Check:
        attribute, fullmatch = self.attribute, self._regex.fullmatch

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            return value is not None and fullmatch(value) is not None
        return check


@dataclass(frozen=True, kw_only=True)
class Unlike(Like):
    """The attribute's whole value does not match ``pattern``; an agent without the
    attribute passes (the only operator where it does)."""

    operator = "UNLIKE"

    def failure(self, agent) -> str:
        return f"failed {self.label}"  # a missing attribute passes, so never the reason

    def bind(self, request, pool) -> Check:
        attribute, fullmatch = self.attribute, self._regex.fullmatch

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            return value is None or fullmatch(value) is None
        return check


@functools.lru_cache(maxsize=4096)
def _number(text: str) -> float | None:
    """``text`` as a finite number, or None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True, kw_only=True)
class Is(AttributeConstraint):
    """The attribute equals ``value``: as numbers when both are numbers (``"8"`` is
    ``"8.0"``, as a Mesos scalar attribute means it), otherwise as exact strings."""

    value: str

    operator = "IS"

    @property
    def counts_instances(self) -> bool:
        return False

    def _argument(self):
        return self.value

    def bind(self, request, pool) -> Check:
        attribute, wanted = self.attribute, self.value
        number = _number(wanted)
        if number is None:
            return lambda agent: agent.values.get(attribute) == wanted

        def check(agent) -> bool:
            value = agent.values.get(attribute)
            return value is not None and (value == wanted or _number(value) == number)
        return check


@dataclass(frozen=True, kw_only=True)
class ExclusiveHost(Constraint):
    """The worker gets an agent to itself: only an agent with no workers qualifies, and
    nothing else is placed there while it runs.  The matcher and pool enforce the hard
    form (it concerns every other request too); soft use prefers empty agents."""

    label: str = "ExclusiveHost"

    def bind_score(self, request, pool) -> Score:
        return lambda agent: 0.0 if agent.workers else 1.0

    def failure(self, agent) -> str:
        return "ran other workers (ExclusiveHost)"


@dataclass(frozen=True, kw_only=True)
class ZoneBalance(GroupBy):
    """Mantis' ZoneBalance: a :class:`GroupBy` without a number on the ``zone``
    attribute, counted per stage (hard: balanced over the zones that could take the
    worker; soft: prefer the zone with the fewest instances of this stage)."""

    attribute: str = "zone"
    per_stage: bool = True
    label: str = "ZoneBalance"


@dataclass(frozen=True, kw_only=True)
class ClusterAffinity(Constraint):
    """Mantis' ``M<n>Cluster`` names: machine-family affinity from Netflix's fleet, with no
    meaning here; accepted so existing job definitions load, and never rejects."""

    def _default_label(self) -> str:
        return "cluster affinity"


# -- parsing -----------------------------------------------------------------------------

_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "MAX_PER", "LIKE", "UNLIKE", "IS")
_VALUE_REQUIRED = {"MAX_PER", "LIKE", "UNLIKE", "IS"}
_MANTIS_NAMES: dict[str, Callable[[], Constraint]] = {
    "uniquehost": lambda: Unique(attribute=HOSTNAME, label="UniqueHost"),
    "uniquehostperstage": lambda: Unique(attribute=HOSTNAME, per_stage=True, label="UniqueHostPerStage"),
    "exclusivehost": ExclusiveHost,
    "zonebalance": ZoneBalance,
}
_AFFINITY = re.compile(r"m\d+cluster")
_EXPECTED = ("expected UniqueHost, UniqueHostPerStage, ExclusiveHost, ZoneBalance, M<n>Cluster "
             "or [field, OPERATOR, value?] with OPERATOR one of " + ", ".join(_OPERATORS))


def parse_constraint(spec: Any) -> Constraint:
    """The :class:`Constraint` a job definition's constraint spec names.

    ``spec`` is a Mantis name string, a Marathon ``[field, OPERATOR, value?]`` list (or
    ``"field:OPERATOR:value"`` string), or an already parsed :class:`Constraint`
    (returned as is).  Raises ``ValueError`` with a one-line message on anything else.
    """
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, str):
        text = spec.strip()
        named = _MANTIS_NAMES.get(text.lower())
        if named is not None:
            return named()
        if _AFFINITY.fullmatch(text.lower()):
            return ClusterAffinity(label=text)
        if ":" in text:
            return _parse_operator(text.split(":", 2), spec)
        raise ValueError(f"unknown constraint {spec!r}: {_EXPECTED}")
    if isinstance(spec, (list, tuple)):
        return _parse_operator(list(spec), spec)
    raise ValueError(f"constraint must be a name or a [field, OPERATOR, value] list, got {type(spec).__name__}: "
                     f"{spec!r}")


def _parse_operator(parts: list, spec: Any) -> Constraint:
    if len(parts) not in (2, 3):
        raise ValueError(f"constraint {spec!r} must be [field, OPERATOR] or [field, OPERATOR, value]")
    name, operator = parts[0], parts[1]
    if not isinstance(name, str) or not name.strip().lstrip("@"):
        raise ValueError(f"constraint {spec!r}: field must be a non-empty string")
    if not isinstance(operator, str) or operator.strip().upper() not in _OPERATORS:
        raise ValueError(f"constraint {spec!r}: unknown operator {operator!r}, expected one of "
                         + ", ".join(_OPERATORS))
    operator = operator.strip().upper()
    name = name.strip()
    attribute = HOSTNAME if name.lstrip("@").lower() == "hostname" else name.lstrip("@")
    value = parts[2] if len(parts) == 3 else None
    if isinstance(value, bool) or not (value is None or isinstance(value, (str, int, float))):
        raise ValueError(f"constraint {spec!r}: value must be a string or a number")
    value = None if value is None or str(value).strip() == "" else str(value).strip()
    if operator in _VALUE_REQUIRED and value is None:
        raise ValueError(f"constraint {spec!r}: {operator} needs a value")
    if operator == "UNIQUE":
        if value is not None:
            raise ValueError(f"constraint {spec!r}: UNIQUE takes no value")
        return Unique(attribute=attribute)
    if operator == "CLUSTER":
        return Cluster(attribute=attribute, value=value)
    if operator == "IS":
        assert value is not None  # IS is in _VALUE_REQUIRED, checked above
        return Is(attribute=attribute, value=value)
    if operator in ("GROUP_BY", "MAX_PER"):
        number = None
        if value is not None:
            try:
                number = int(value)
            except ValueError:
                number = 0
            if number < 1:
                raise ValueError(f"constraint {spec!r}: {operator} value must be a positive integer, got {value!r}")
        if operator == "GROUP_BY":
            return GroupBy(attribute=attribute, groups=number)
        assert number is not None  # MAX_PER is in _VALUE_REQUIRED, so number was parsed above
        return MaxPer(attribute=attribute, limit=number)
    assert value is not None  # LIKE and UNLIKE are in _VALUE_REQUIRED, checked above
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"constraint {spec!r}: {operator} value is not a valid regular expression ({exc})") from None
    kind = Like if operator == "LIKE" else Unlike
    return kind(attribute=attribute, pattern=value)
