"""API latency is observed per route pattern, method and status (never per raw path)."""
from __future__ import annotations

import tornado.routing
import tornado.testing
from prometheus_client import CollectorRegistry

from actors.messages import Done, GetJob
from tests.webapi.fake_gateway import DESCRIBED_JOB, FakeGateway
from webapi.app import make_app
from webapi.metrics import RequestMetrics, route_label


def test_route_labels_come_from_the_route_patterns_strings_or_matchers():
    assert route_label(r"/api/v1/jobClusters/([^/]+)/actions/([A-Za-z]+)/?") == "/api/v1/jobClusters/{}/actions/{}"
    metrics = RequestMetrics([r"/api/v1/jobs/([^/]+)/?", tornado.routing.PathMatches(r"/api/v1/agents/([^/]+)/?")],
                             CollectorRegistry())
    assert metrics.route_of("/api/v1/jobs/clicks-7") == "/api/v1/jobs/{}"
    assert metrics.route_of("/api/v1/agents/local") == "/api/v1/agents/{}"
    assert metrics.route_of("/no/such/path") == "other"


class ObservedRequests(tornado.testing.AsyncHTTPTestCase):
    def get_app(self):
        gateway = FakeGateway()
        gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        self.app = make_app(gateway)
        return self.app

    def test_each_request_is_counted_under_its_route_method_and_status(self):
        for job in ("a-1", "b-2", "c-3"):
            self.fetch(f"/api/v1/jobs/{job}")
        self.fetch("/api/v1/jobs/no_number")  # not a job id: 400
        self.fetch("/nowhere")
        registry = self.app.settings["metrics"].registry
        sample = registry.get_sample_value
        assert sample("mantis_http_request_duration_seconds_count",
                      {"route": "/api/v1/jobs/{}", "method": "GET", "status": "200"}) == 3.0
        assert sample("mantis_http_request_duration_seconds_count",
                      {"route": "/api/v1/jobs/{}", "method": "GET", "status": "400"}) == 1.0
        assert sample("mantis_http_request_duration_seconds_count",
                      {"route": "other", "method": "GET", "status": "404"}) == 1.0
