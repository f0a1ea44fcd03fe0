"""A cluster's ``migrationConfig`` (Mantis' WorkerMigrationConfig), parsed and checked.

``{"strategy": "ONE_WORKER" | "PERCENTAGE", "configString": "..."}``; for PERCENTAGE the
config string is JSON ``{"percentToMove": 1..100, "intervalMs": >= 0}``.  What the
strategies do is ``mantis.lifecycles.migration``.
"""
from __future__ import annotations

from dataclasses import dataclass

import ujson

from mantis.model.codec import ValidationError

STRATEGIES = ("ONE_WORKER", "PERCENTAGE")
DEFAULT_PERCENT = 10  # Mantis' default percentToMove
DEFAULT_INTERVAL_S = 60.0  # Mantis' default interval between moves (one minute)


@dataclass(frozen=True)
class MigrationConfig:
    """How a job's workers move: ``strategy``, and for PERCENTAGE its percent and interval."""

    strategy: str = "ONE_WORKER"
    percent_to_move: int = DEFAULT_PERCENT
    interval_s: float = DEFAULT_INTERVAL_S

    @classmethod
    def parse(cls, migration_config: dict | None) -> MigrationConfig:
        """From a cluster's ``migrationConfig`` (``{"strategy", "configString"}``); raises
        ValidationError for an unknown strategy or a PERCENTAGE configString that is
        not ``{"percentToMove": 1..100, "intervalMs": >= 0}``."""
        data = migration_config or {}
        strategy = data.get("strategy", "ONE_WORKER")
        if strategy not in STRATEGIES:
            raise ValidationError(f"migrationConfig.strategy must be one of {', '.join(STRATEGIES)}")
        text = (data.get("configString") or "").strip()
        if strategy == "ONE_WORKER" or not text:
            return cls(strategy)
        try:
            conf = ujson.loads(text)
        except ValueError:
            raise ValidationError("migrationConfig.configString is not JSON") from None
        if not isinstance(conf, dict):
            raise ValidationError("migrationConfig.configString must be a JSON object")
        percent, interval_ms = conf.get("percentToMove", DEFAULT_PERCENT), conf.get("intervalMs", 60_000)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise ValidationError("migrationConfig.configString.percentToMove must be a whole number 1..100")
        if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, float)) or interval_ms < 0:
            raise ValidationError("migrationConfig.configString.intervalMs must be a number >= 0")
        return cls(strategy, percent, interval_ms / 1000.0)
