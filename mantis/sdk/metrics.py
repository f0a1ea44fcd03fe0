"""The job's own metrics, as job code sees them through ``ctx.metrics``.

``counter(name).increment(n)`` and ``gauge(name).set(value)``, thread-safe, read with
``snapshot()`` (name -> last value).  A plain data source: the worker serves it
(``mantis.runtime.worker_metrics``), heartbeats carry it to the master, the Job Master
scales on it (UserDefined rules), and an exporter can walk it (``kinds()``).
"""
from __future__ import annotations

import threading


class Counter:
    """A count that only grows (``increment``), safe from any thread."""

    def __init__(self) -> None:
        self._value = 0.0
        self._lock = threading.Lock()

    def increment(self, amount: float = 1.0) -> None:
        """Add ``amount`` (ValueError if negative: a counter never goes down)."""
        if amount < 0:
            raise ValueError("a counter only grows; use a gauge for values that go down")
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        """The count so far."""
        return self._value


class Gauge:
    """A value that is set (``set``), the last one kept."""

    def __init__(self) -> None:
        self._value = 0.0

    def set(self, value: float) -> None:
        """Make ``value`` the gauge's value (assignment is atomic: no lock needed)."""
        self._value = float(value)

    @property
    def value(self) -> float:
        """The last value set (0.0 before any)."""
        return self._value


class MetricRegistry:
    """The job's own metrics of one worker, by name (one kind per name)."""

    def __init__(self) -> None:
        self._metrics: dict[str, Counter | Gauge] = {}
        self._lock = threading.Lock()

    def _get(self, name: str, kind: type[Counter] | type[Gauge]) -> Counter | Gauge:
        if not isinstance(name, str) or not name:
            raise ValueError("a metric needs a non-empty name")
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = kind()
        if not isinstance(metric, kind):
            raise ValueError(f"metric {name!r} is a {type(metric).__name__.lower()}, not a {kind.__name__.lower()}")
        return metric

    def counter(self, name: str) -> Counter:
        """The counter ``name`` (created at 0 on first use)."""
        metric = self._get(name, Counter)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str) -> Gauge:
        """The gauge ``name`` (created at 0 on first use)."""
        metric = self._get(name, Gauge)
        assert isinstance(metric, Gauge)
        return metric

    def snapshot(self) -> dict[str, float]:
        """Every metric's current value, by name."""
        with self._lock:
            items = list(self._metrics.items())
        return {name: metric.value for name, metric in items}

    def kinds(self) -> dict[str, str]:
        """Each metric's kind ("counter" or "gauge"), by name (for exporters)."""
        with self._lock:
            return {name: type(m).__name__.lower() for name, m in self._metrics.items()}
