"""What one subscriber to a job's output asked to see: a filter expression and sampling.

A subscription narrows the stream on the server, so a subscriber that wants a trickle
of a busy job's output does not pay for the flood.  ``Subscription.parse`` takes the
query parameters of an output request:

- ``filter``: an expression over each event's fields, e.g.
  ``value >= 50 and user in ("user-1", "user-2")`` or ``not (country == "NL")``.
  Names are the event's fields (``a.b`` reads ``event["a"]["b"]``); a field the event
  lacks is None.  Allowed: comparisons (``== != < <= > >= in not in``), ``and``, ``or``,
  ``not``, literals (numbers, strings, True/False/None, tuples and lists of literals).
  Nothing else (no calls, no arithmetic, no subscripts), so an expression cannot run code;
  an event whose comparison fails (``"a" < 1``) does not match.
- ``sampleMSec``: at most one event per this many milliseconds (the first of each
  period), as Mantis' ``sampleMSec``.

``SubscriptionError`` says what is wrong with a parameter, for a 400.
"""
from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_FILTER_LENGTH = 2000

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}


class SubscriptionError(ValueError):
    """A subscription parameter that cannot be used; the message says which and why."""


def compile_filter(text: str) -> Callable[[Any], bool]:
    """A predicate over events from a filter expression; SubscriptionError if not allowed."""
    if len(text) > MAX_FILTER_LENGTH:
        raise SubscriptionError(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise SubscriptionError(f"filter is not a valid expression: {exc.msg} at column {exc.offset}") from None
    evaluate = _compile(tree.body)

    def matches(event: Any) -> bool:
        try:
            return bool(evaluate(event))
        except TypeError:  # e.g. comparing a string field with a number
            return False

    return matches


def _compile(node: ast.AST) -> Callable[[Any], Any]:
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda e: all(p(e) for p in parts)
        return lambda e: any(p(e) for p in parts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile(node.operand)
        return lambda e: not inner(e)
    if isinstance(node, ast.Compare):
        left = _compile(node.left)
        steps = [(_COMPARE[type(op)], _compile(right)) for op, right in zip(node.ops, node.comparators, strict=True)
                 if type(op) in _COMPARE]
        if len(steps) != len(node.ops):
            raise SubscriptionError("filter may compare only with == != < <= > >= in, not in")

        def compare(e):
            a = left(e)
            for op, right in steps:
                b = right(e)
                if not op(a, b):
                    return False
                a = b
            return True

        return compare
    if isinstance(node, (ast.Name, ast.Attribute)):
        path = _field_path(node)
        return lambda e: _field(e, path)
    literal = _literal(node)
    return lambda e: literal


def _field_path(node: ast.AST) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):  # not reachable on 3.11 (they are Constants)
            raise SubscriptionError(f"filter: {node.id} is not a field")
        return (node.id,)
    if isinstance(node, ast.Attribute):
        return _field_path(node.value) + (node.attr,)
    raise SubscriptionError("filter: a field is a name, or names joined by dots")


def _field(event: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(event, dict):
            return None
        event = event.get(name)
    return event


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return tuple(_literal(item) for item in node.elts)
    raise SubscriptionError(f"filter: {type(node).__name__} is not allowed "
                            "(only fields, literals, comparisons, and, or, not)")


@dataclass(frozen=True)
class Subscription:
    """A subscriber's filter (None: every event) and sampling period (0: every event)."""

    matches: Callable[[Any], bool] | None = None
    sample_ms: int = 0
    filter_text: str = ""

    @classmethod
    def parse(cls, filter_text: str | None, sample_ms: str | None) -> Subscription:
        """From the ``filter`` and ``sampleMSec`` query parameters (None when absent)."""
        matches = compile_filter(filter_text) if filter_text else None
        period = 0
        if sample_ms not in (None, ""):
            try:
                period = int(sample_ms)
            except ValueError:
                raise SubscriptionError(f"sampleMSec must be a whole number of milliseconds, "
                                        f"got {sample_ms!r}") from None
            if not 0 <= period <= 3_600_000:
                raise SubscriptionError("sampleMSec must be between 0 and 3600000")
        return cls(matches, period, filter_text or "")

    def sampler(self) -> Callable[[list, float], list]:
        """A function ``(batch, now_s) -> the events to send``, with the sampling state of one
        subscriber (call ``sampler()`` once per subscriber)."""
        matches, period_s = self.matches, self.sample_ms / 1000
        next_at = [0.0]

        def select(batch: list, now: float) -> list:
            events = batch if matches is None else [e for e in batch if matches(e)]
            if not period_s or not events:
                return events
            if now < next_at[0]:
                return []
            next_at[0] = now + period_s
            return events[:1]

        return select

    @property
    def narrows(self) -> bool:
        """True when the subscriber sees less than the whole output."""
        return self.matches is not None or self.sample_ms > 0
