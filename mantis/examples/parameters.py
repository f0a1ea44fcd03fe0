"""What the example jobs' parameters have in common, written once.

The generating examples (``synthetic``, ``word_count``, ``keyed_count``) take the same
``rate``, ``limit`` and (for users) ``keys`` parameters; the others validate a text
parameter by trying to parse it (``parsed_by``).
"""
from __future__ import annotations

from collections.abc import Callable

from mantis.sdk.job_dsl import ParameterDefinition, at_least


def paced_parameters(rate: int, items: str = "events", keys: int | None = None) -> list[ParameterDefinition]:
    """``rate`` (default ``rate`` ``items`` per second), then ``keys`` (distinct users, when a
    default is given), then ``limit``: the parameters of a ``paced_source`` example."""
    parameters = [ParameterDefinition("rate", "int", default=rate, validator=at_least(0),
                                      description=f"{items} per second; 0 = as fast as possible")]
    if keys is not None:
        parameters.append(ParameterDefinition("keys", "int", default=keys, validator=at_least(1),
                                              description="number of distinct users"))
    parameters.append(ParameterDefinition("limit", "int", default=0, validator=at_least(0),
                                          description=f"stop after this many {items}; 0 = run forever"))
    return parameters


def parsed_by(parse: Callable[[str], object], error: type[Exception]) -> Callable[[str], bool]:
    """A parameter validator: true when ``parse(text)`` raises no ``error``."""

    def valid(text: str) -> bool:
        try:
            parse(text)
        except error:
            return False
        return True

    return valid
