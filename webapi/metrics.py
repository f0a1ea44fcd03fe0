"""``GET /metrics``: the master's Prometheus metrics, in the text format.

The master is several processes (the clusters manager, the scheduler, K shards), and
only this API process serves HTTP.  Rather than each actor process serving metrics of
its own (more ports to discover and scrape, and gone with a restarted shard), the API
gathers them at scrape time from the answers it already gets:

- jobs and workers by state, counted by the manager (``CountJobs``) over the job
  summaries the jobs already push to it coalesced per turn;
- agents, their heartbeat lag and age, and pending workers from the scheduler
  (``ListAgents``, ``GetPending``);
- the placement round time from the scheduler and the store write time from every
  shard (``GetTimings``): each keeps a ``prometheus_client`` histogram in its own
  process (``mantis.timings``) and answers a snapshot, merged here over the shards;
- leader status and terms from this process' ``MasterRole``;
- API request latency, observed here for each request by route pattern (never the
  raw path, whose ids would make a series per job).

So a scrape costs four asks plus one per shard, not one per job, and values are as
fresh as the scrape.  A source that does not answer is reported by
``mantis_metrics_source_up{source=...} 0`` rather than failing the scrape.
``MasterCollector`` turns one gathered snapshot into metric families; the handler
gathers, then renders the app's registry.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import tornado.log
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from actors.messages import CountJobs, GetPending, GetTimings, ListAgents
from mantis.timings import merge
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler

log = logging.getLogger("mantis.metrics")

JOB_STATES = ("Accepted", "Launched", "Terminating_normal", "Terminating_abnormal", "Completed", "Failed")
WORKER_STATES = ("Accepted", "Launched", "StartInitiated", "Started", "Completed", "Failed")
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_GROUPS = re.compile(r"\((?:\[\^/\]\+|\[A-Za-z\]\+)\)")


def route_label(pattern: str) -> str:
    """A route's regex as a readable label: groups become ``{}``, the optional slash goes."""
    label = _GROUPS.sub("{}", pattern)
    return label[:-2] if label.endswith("/?") else label


class RequestMetrics:
    """API request latency by route pattern, method and status, on ``registry``.

    ``log_request(handler)`` is the Application's ``log_function``: it observes the
    request and writes Tornado's access-log line as Tornado would."""

    def __init__(self, patterns: list, registry: CollectorRegistry):
        # A route is a regex string or a Tornado matcher holding one (``PathMatches.regex``).
        texts = [p if isinstance(p, str) else getattr(getattr(p, "regex", None), "pattern", None) for p in patterns]
        self.routes = [(re.compile(t.rstrip("$") + "$"), route_label(t.rstrip("$"))) for t in texts if t]
        self.duration = Histogram("mantis_http_request_duration_seconds",
                                  "Time to answer an API request, by route pattern, method and status.",
                                  ["route", "method", "status"], buckets=REQUEST_BUCKETS, registry=registry)

    def route_of(self, path: str) -> str:
        """The route pattern ``path`` falls under (``other`` when none: unknown paths share one series)."""
        for regex, label in self.routes:
            if regex.match(path):
                return label
        return "other"

    def log_request(self, handler) -> None:
        request, status = handler.request, handler.get_status()
        seconds = request.request_time()
        self.duration.labels(self.route_of(request.path), request.method, str(status)).observe(seconds)
        level = (tornado.log.access_log.info if status < 400 else
                 tornado.log.access_log.warning if status < 500 else tornado.log.access_log.error)
        level("%d %s %s (%s) %.2fms", status, request.method, request.uri, request.remote_ip, 1000.0 * seconds)


class MasterCollector(Collector):
    """The gathered master state as metric families; ``snapshot`` is set before each render."""

    def __init__(self):
        self.snapshot: dict[str, Any] = {}

    def collect(self):
        s = self.snapshot
        up = GaugeMetricFamily("mantis_metrics_source_up", "1 when this source answered the last scrape.",
                               labels=["source"])
        for source, ok in sorted(s.get("up", {}).items()):
            up.add_metric([source], 1.0 if ok else 0.0)
        yield up
        yield from self._jobs(s.get("jobs"))
        yield from self._agents(s.get("agents"), s.get("pending"))
        yield from self._histogram("mantis_scheduler_placement_round_seconds",
                                   "Time the scheduler spends in one placement round.", s.get("placementRound"))
        yield from self._histogram("mantis_store_write_seconds",
                                   "Time of one durable grouped store write, over all shards.", s.get("storeWrite"))
        role = s.get("role") or {}
        leader = GaugeMetricFamily("mantis_master_leader", "1 while this master leads, else 0.")
        leader.add_metric([], 1.0 if role.get("leading") else 0.0)
        yield leader
        terms = CounterMetricFamily("mantis_master_leader_terms", "Terms this master process has led.")
        terms.add_metric([], float(len(role.get("terms", []))))
        yield terms
        if role.get("termStartedAt") is not None:
            started = GaugeMetricFamily("mantis_master_leader_term_start_time_seconds",
                                        "When the current term began (Unix time).")
            started.add_metric([], float(role["termStartedAt"]))
            yield started

    @staticmethod
    def _jobs(counts: dict | None):
        if counts is None:
            return
        # Every known state is present (0 included), so a series does not vanish at zero.
        by_state = {**dict.fromkeys(JOB_STATES, 0), **counts.get("jobs", {})}
        workers = {**dict.fromkeys(WORKER_STATES, 0), **counts.get("workers", {})}
        family = GaugeMetricFamily("mantis_jobs", "Jobs the master knows, by state.", labels=["state"])
        for state, count in by_state.items():
            family.add_metric([state], float(count))
        yield family
        family = GaugeMetricFamily("mantis_workers", "Workers of running jobs, by state.", labels=["state"])
        for state, count in workers.items():
            family.add_metric([state], float(count))
        yield family

    @staticmethod
    def _agents(agents: list | None, pending: list | None):
        if pending is not None:
            family = GaugeMetricFamily("mantis_pending_workers", "Workers waiting for placement.")
            family.add_metric([], float(len(pending)))
            yield family
        if agents is None:
            return
        family = GaugeMetricFamily("mantis_agents", "Registered agents, by state.", labels=["state"])
        disabled = sum(1 for a in agents if a.get("disabled"))
        family.add_metric(["enabled"], float(len(agents) - disabled))
        family.add_metric(["disabled"], float(disabled))
        yield family
        lag = GaugeMetricFamily("mantis_agent_heartbeat_lag_seconds",
                                "How late the agent's last heartbeat arrived after it was sent.", labels=["agent"])
        age = GaugeMetricFamily("mantis_agent_last_heartbeat_age_seconds",
                                "Time since the agent's last heartbeat.", labels=["agent"])
        for a in agents:
            if a.get("heartbeatLagS") is not None:
                lag.add_metric([a["agentId"]], float(a["heartbeatLagS"]))
            if a.get("lastHeartbeatAgoS") is not None:
                age.add_metric([a["agentId"]], float(a["lastHeartbeatAgoS"]))
        yield lag
        yield age

    @staticmethod
    def _histogram(name: str, documentation: str, snap: dict | None):
        if not snap:
            return
        family = HistogramMetricFamily(name, documentation)
        family.add_metric([], [(le, count) for le, count in snap["buckets"]], sum_value=snap["sum"])
        yield family


async def _answer(coroutine) -> Any:
    try:
        return await coroutine
    except (TimeoutError, ApiError) as exc:
        log.warning("metrics: a source did not answer: %s", exc)
        return None


async def gather(gateway, role) -> dict:
    """One snapshot of the master for ``MasterCollector`` (see the module doc)."""
    jobs, agents, pending, scheduler, shards = await asyncio.gather(
        _answer(gateway.ask(CountJobs(), timeout=5.0)),
        _answer(gateway.ask(ListAgents(), to="scheduler", timeout=5.0)),
        _answer(gateway.ask(GetPending(), to="scheduler", timeout=5.0)),
        _answer(gateway.ask(GetTimings(), to="scheduler", timeout=5.0)),
        _answer(gateway.ask_each_shard(GetTimings())),
    )
    # Without a role (a test's bare API over its own actors) this process simply leads.
    terms: list = [[time.time(), None]] if role is None else list(role.describe().get("terms") or [])
    leading = role is None or role.leading
    return {
        "up": {"manager": jobs is not None, "scheduler": agents is not None and scheduler is not None,
               "shards": bool(shards)},
        "jobs": jobs, "agents": agents, "pending": pending,
        "placementRound": (scheduler or {}).get("placementRound"),
        "storeWrite": merge(s.get("storeWrite") for s in shards or []),
        "role": {"leading": leading, "terms": terms,
                 "termStartedAt": terms[-1][0] if leading and terms and terms[-1][1] is None else None},
    }


class MasterMetrics:
    """The registry of one API application: request latency plus the gathered master state."""

    def __init__(self, patterns: list):
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics(patterns, self.registry)
        self.collector = MasterCollector()
        self.registry.register(self.collector)

    async def render(self, gateway, role) -> bytes:
        """Gather the master's state and render every metric in the text format."""
        snapshot = await gather(gateway, role)
        # No await between setting and rendering: concurrent scrapes cannot mix snapshots.
        self.collector.snapshot = snapshot
        return generate_latest(self.registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST


def standby_metrics(info: dict) -> bytes:
    """What a standby master answers at ``/metrics``: its own leader status (0) and terms,
    rather than a redirect that would report the leader's figures as this instance's."""
    registry = CollectorRegistry()
    collector = MasterCollector()
    collector.snapshot = {"role": {"leading": False, "terms": list(info.get("terms") or [])}}
    registry.register(collector)
    return generate_latest(registry)


class MetricsHandler(ApiHandler):
    """``GET /metrics``: the application's ``metrics`` registry in Prometheus' text format."""

    async def get(self):
        metrics: MasterMetrics = self.application.settings["metrics"]
        body = await metrics.render(self.gateway, self.application.settings.get("role"))
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)
