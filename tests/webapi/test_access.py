"""The access policy on its own: the role table, tokens from config and file, when a
policy is enforced, and that refusals are 401/403 with JSON messages before any handler
asks the actors (the real master is in tests/e2e/test_access.py)."""
from __future__ import annotations

import json
import logging

import pytest
import tornado.testing

from mantis import config as config_module
from mantis.sdk.entry_point_policy import allowed_packages, refusal
from tests.webapi.fake_gateway import FakeGateway
from webapi.access import AccessConfigError, AccessPolicy, fingerprint, public_config, required_role
from webapi.app import make_app

READ, OPERATE, ADMIN = "read-token-1111", "operate-token-2222", "admin-token-3333"


def load(*overrides: str) -> config_module.Config:
    return config_module.load(None, list(overrides))


@pytest.mark.parametrize("method, path, role", [
    ("GET", "/api/v1/jobClusters", None),
    ("GET", "/api/v1/jobs/a-1", None),
    ("GET", "/metrics", None),
    ("GET", "/api/v1/agents", None),
    ("POST", "/api/v1/jobClusters", "operate"),
    ("PUT", "/api/v1/jobClusters/a", "operate"),
    ("DELETE", "/api/v1/jobs/a-1", "operate"),
    ("POST", "/api/v1/jobs/a-1/actions/scaleStage", "operate"),
    ("POST", "/api/v1/agents/local/actions/drain", "admin"),
    ("GET", "/api/v1/admin/actors", "admin"),
    ("GET", "/api/v1/masterConfigs", "admin"),
])
def test_role_table_names_the_role_each_route_needs(method, path, role):
    assert required_role(method, path) == role


def test_loopback_without_tokens_is_open_and_any_token_enforces():
    assert not AccessPolicy.from_config(load()).enforced
    assert AccessPolicy.from_config(load(f'access.tokens={{"{READ}" = "read"}}')).enforced


def test_binding_beyond_loopback_without_a_token_is_refused():
    with pytest.raises(AccessConfigError, match="beyond loopback"):
        AccessPolicy.from_config(load('master.host="0.0.0.0"'))
    with pytest.raises(AccessConfigError, match="beyond loopback"):
        AccessPolicy.from_config(load('master.host="127.0.0.2"', 'access.loopback_hosts="127.0.0.1"'))
    policy = AccessPolicy.from_config(load('master.host="0.0.0.0"', f'access.tokens={{"{ADMIN}" = "admin"}}'))
    assert policy.enforced and policy.role_of(ADMIN) == "admin"


def test_tokens_file_adds_tokens_and_bad_roles_or_lines_are_refused(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(f"# role token\nread {READ}\n\noperate {OPERATE}  # the deployer\n")
    policy = AccessPolicy.from_config(load(f'access.tokens_file="{path}"'))
    assert policy.role_of(READ) == "read" and policy.role_of(OPERATE) == "operate"
    assert policy.role_of("nobody-at-all") is None
    path.write_text(f"root {READ}\n")
    with pytest.raises(AccessConfigError, match="roles are read, operate, admin") as refused:
        AccessPolicy.from_config(load(f'access.tokens_file="{path}"'))
    assert READ not in str(refused.value)  # the message names the token by fingerprint only
    path.write_text("read\n")
    with pytest.raises(AccessConfigError, match="ROLE TOKEN"):
        AccessPolicy.from_config(load(f'access.tokens_file="{path}"'))


def test_config_view_replaces_tokens_with_fingerprints():
    view = public_config(load(f'access.tokens={{"{ADMIN}" = "admin"}}').to_dict())
    assert view["access"]["tokens"] == {fingerprint(ADMIN): "admin"}
    assert ADMIN not in json.dumps(view)


def test_entry_points_come_only_from_allowed_packages():
    allowed = allowed_packages("acme.jobs, tests.job_fixtures")
    assert allowed == ("mantis.examples", "acme.jobs", "tests.job_fixtures")
    assert refusal("mantis.examples.synthetic:job", allowed) is None
    assert refusal("acme.jobs:job", allowed) is None
    assert refusal("acme.jobs.clicks:job", allowed) is None
    assert "not in an allowed package" in refusal("acme.jobsx:job", allowed)
    assert "not in an allowed package" in refusal("os:system", allowed_packages(""))


class EnforcedApi(tornado.testing.AsyncHTTPTestCase):
    """The REST app with tokens of each role over a fake gateway: refusals never reach it."""

    def get_app(self):
        self.gateway = FakeGateway()
        policy = AccessPolicy(tokens={READ: "read", OPERATE: "operate", ADMIN: "admin"}, enforced=True)
        return make_app(self.gateway, access=policy)

    def call(self, method, path, token=None, body=None, header=None):
        headers = {"Authorization": header or f"Bearer {token}"} if (token or header) else {}
        raw = json.dumps(body).encode() if body is not None else (b"{}" if method in ("POST", "PUT") else None)
        response = self.fetch(path, method=method, body=raw, headers=headers, allow_nonstandard_methods=True)
        return response.code, json.loads(response.body or b"null")

    def test_a_mutation_without_a_token_is_401_and_never_asked(self):
        status, body = self.call("POST", "/api/v1/jobClusters", body={"name": "a"})
        assert status == 401 and body["status"] == 401 and "bearer token" in body["error"]
        assert self.gateway.asked == []

    def test_a_read_token_on_a_mutation_is_403(self):
        status, body = self.call("DELETE", "/api/v1/jobs/a-1?user=u&reason=r", READ)
        assert status == 403 and "needs role operate" in body["error"] and "role read" in body["error"]
        assert self.gateway.asked == []

    def test_operate_may_mutate_but_only_admin_acts_on_agents(self):
        assert self.call("DELETE", "/api/v1/jobs/a-1?user=u&reason=r", OPERATE)[0] == 202
        assert self.call("POST", "/api/v1/agents/local/actions/drain", OPERATE)[0] == 403
        assert self.call("POST", "/api/v1/agents/local/actions/drain", ADMIN)[0] == 200
        assert self.call("GET", "/api/v1/admin/actors", OPERATE)[0] == 403

    def test_reads_are_open_but_a_bad_token_is_401_everywhere(self):
        assert self.call("GET", "/api/v1/jobClusters")[0] == 200
        assert self.call("GET", "/api/v1/jobClusters", "not-a-token-at-all")[0] == 401
        assert self.call("GET", "/api/v1/jobClusters", header="Basic abc")[0] == 401

    def test_tokens_never_reach_the_logs(self):
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        root = logging.getLogger()
        root.addHandler(handler)
        old = root.level
        root.setLevel(logging.DEBUG)
        try:
            self.call("POST", "/api/v1/jobClusters", READ, body={"name": "a"})
            self.call("GET", "/api/v1/jobClusters", "not-a-token-at-all")
            self.call("DELETE", "/api/v1/jobs/a-1?user=u&reason=r", OPERATE)
        finally:
            root.removeHandler(handler)
            root.setLevel(old)
        assert records, "the requests were logged"
        assert not [r for r in records if READ in r or OPERATE in r or "not-a-token-at-all" in r], records
