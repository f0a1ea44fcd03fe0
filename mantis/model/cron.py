"""Cron specs as Mantis writes them, read with croniter.

Mantis' ``cronSpec`` is a Quartz expression: six or seven fields with the seconds first
(``sec min hour day-of-month month day-of-week [year]``), ``?`` for "no specific value"
and days of the week numbered 1 (Sunday) to 7.  A classic five-field Unix spec
(``min hour dom month dow``, Sunday 0) is accepted too.  ``CronSchedule.next_after``
answers when the spec next fires after a moment, in UTC epoch seconds.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from mantis.model.codec import ValidationError

# A number in a day-of-week field that names a day (not a step after "/", not an
# occurrence after "#"): these shift from Quartz' 1-7 to cron's 0-6.
_QUARTZ_DAY = re.compile(r"(?<![/#\d])(\d+)")


def _cron_day_of_week(field: str) -> str:
    return _QUARTZ_DAY.sub(lambda m: str(int(m.group(1)) - 1), field)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron spec; ``spec`` is the text as given."""

    spec: str
    expression: str          # in croniter's syntax
    seconds_first: bool      # True for a Quartz (six or seven field) spec

    @classmethod
    def parse(cls, spec: str) -> CronSchedule:
        """Parse ``spec`` or raise ValidationError saying why it is not a cron spec."""
        fields = spec.split()
        if len(fields) == 5:
            expression, seconds_first = " ".join(fields), False
        elif len(fields) in (6, 7):
            if len(fields) == 7 and fields[6] not in ("*", "?"):
                # croniter would read a seventh field as a year; Quartz does too, but a
                # cluster that runs only in some year is not worth the ambiguity.
                raise ValidationError(f"cronSpec {spec!r}: only '*' or '?' is supported as the year")
            fields = fields[:6]
            fields[5] = _cron_day_of_week(fields[5])
            expression, seconds_first = " ".join(fields), True
        else:
            raise ValidationError(f"cronSpec {spec!r}: expected 5 fields (Unix) or 6-7 (Quartz, seconds first)")
        if not croniter.is_valid(expression, second_at_beginning=seconds_first):
            raise ValidationError(f"cronSpec {spec!r} is not a valid cron expression")
        return cls(spec, expression, seconds_first)

    def next_after(self, now: float) -> float:
        """The first moment strictly after ``now`` (epoch seconds, UTC) the spec fires."""
        start = datetime.fromtimestamp(now, UTC)
        it = croniter(self.expression, start, second_at_beginning=self.seconds_first)
        return float(it.get_next(float))
