"""The OpenAPI document: valid, complete, and what the live server really does.

- ``openapi-spec-validator`` checks the document against the OpenAPI 3 specification;
- every route ``webapi.app`` serves is described, and every described path is served;
- schemathesis drives a real master (multiprocTCPBase, with an agent) through every
  described operation but the streams: no answer may be a 5xx, and every answer must
  have a described status, content type and body.
"""
from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi import checks as openapi_checks

from mantis.tooling.local_processes import LocalCluster
from tests.support import make_config
from tests.webapi.fake_gateway import FakeGateway
from webapi import openapi
from webapi.app import make_app

SAMPLE = {"clusterName": "sample-cluster", "jobId": "sample-cluster-1", "agentId": "agent-1", "action": "drain"}


def test_the_document_is_valid_openapi_3():
    validate(openapi.document("http://127.0.0.1:8100"))


def _served_patterns() -> list[str]:
    app = make_app(FakeGateway())
    patterns = []
    for rule in app.wildcard_router.rules:
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None:
            patterns.append(regex.pattern)
    return patterns


def _sample(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)


def test_every_served_route_is_described_and_every_described_path_is_served():
    patterns = _served_patterns()
    described = [_sample(p) for p in openapi.document()["paths"]]
    undescribed = [p for p in patterns if not any(re.fullmatch(p, d) for d in described)]
    assert not undescribed, f"routes the document does not describe: {undescribed}"
    unserved = [d for d in described if not any(re.fullmatch(p, d) for p in patterns)]
    assert not unserved, f"described paths no route serves: {unserved}"


def test_the_master_serves_the_document_naming_itself(master):
    status, doc = master.call("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": master.url}] and doc["paths"] == openapi.document()["paths"]


# -- the live server against the document -------------------------------------------

@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """A real master and agent, with one cluster and one running job for the operations to find."""
    tmp = tmp_path_factory.mktemp("openapi")
    cluster = LocalCluster(make_config(tmp), tmp)
    cluster.start()
    try:
        assert cluster.call("POST", "/api/v1/jobClusters", {"name": "sample-cluster",
                                                            "url": "mantis.examples.synthetic:job"})[0] == 201
        assert cluster.call("POST", "/api/v1/jobClusters/sample-cluster/jobs", {"user": "t"})[0] == 201
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def live_schema(master):
    return schemathesis.openapi.from_url(f"{master.url}/api/v1/openapi.json")


# The streams run until their job ends: their shapes are the stream tests' to check.
schema = schemathesis.pytest.from_fixture("live_schema").exclude(tag="streams")
CHECKS = [openapi_checks.status_code_conformance, openapi_checks.content_type_conformance,
          openapi_checks.response_schema_conformance]


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_live_server_answers_as_the_document_says(case):
    response = case.call(timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
    case.validate_response(response, checks=CHECKS)
