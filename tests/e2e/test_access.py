"""Access on a real master bound to 127.0.0.2, which the config does not count as
loopback: it refuses to start without a token; with tokens, a mutation without one is
401, with a read token 403, with an operate token done; entry points outside the allowed
packages are refused; no token reaches the master's log; the CLI sends $MANTIS_TOKEN."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from mantis.tooling.local_processes import Service, write_config
from tests.support import make_config, wait_for

READ, OPERATE, ADMIN = "read-e2e-token-1", "operate-e2e-token-2", "admin-e2e-token-3"
HOST = "127.0.0.2"
CLUSTER = {"name": "guarded", "url": "mantis.examples.synthetic:job", "parameters": [{"name": "rate", "value": 5}]}


def beyond_loopback(tmp_path, **extra):
    return make_config(tmp_path, **{"master.host": f'"{HOST}"', "access.loopback_hosts": '"127.0.0.1"', **extra})


def api(url, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_master_beyond_loopback_without_a_token_refuses_to_start(tmp_path):
    path = write_config(beyond_loopback(tmp_path), tmp_path / "master.toml")
    done = subprocess.run([sys.executable, "-m", "mantis.cli", "master", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "binds 127.0.0.2, beyond loopback" in lines[0], done.stderr


def test_tokens_and_roles_on_a_real_master_beyond_loopback(tmp_path):
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"admin {ADMIN}\n")
    config = beyond_loopback(tmp_path, **{"access.tokens": f'{{"{READ}" = "read", "{OPERATE}" = "operate"}}',
                                          "access.tokens_file": f'"{tokens_file}"'})
    path = write_config(config, tmp_path / "master.toml")
    url = f"http://{HOST}:{config.master.api_port}"
    master = Service(["master", "--config", str(path)], tmp_path / "master.log").start()
    try:
        wait_for(lambda: _answers(url), timeout=30, what=f"master API at {url}")
        status, body = api(url, "POST", "/api/v1/jobClusters", CLUSTER)
        assert status == 401 and body["status"] == 401 and "bearer token" in body["error"], body
        status, body = api(url, "POST", "/api/v1/jobClusters", CLUSTER, READ)
        assert status == 403 and "needs role operate" in body["error"], body
        assert api(url, "POST", "/api/v1/jobClusters", CLUSTER, OPERATE)[0] == 201
        assert api(url, "GET", "/api/v1/jobClusters/guarded")[0] == 200  # reads stay open
        assert api(url, "GET", "/api/v1/masterConfigs", token=OPERATE)[0] == 403
        status, configs = api(url, "GET", "/api/v1/masterConfigs", token=ADMIN)
        assert status == 200 and READ not in json.dumps(configs) and OPERATE not in json.dumps(configs)
        assert api(url, "POST", "/api/v1/agents/nowhere/actions/disable", {"user": "u"}, OPERATE)[0] == 403
        assert api(url, "POST", "/api/v1/agents/nowhere/actions/disable", {"user": "u"}, ADMIN)[0] == 404

        # Importing a module is running code: only allowed packages are ever named or loaded.
        evil = dict(CLUSTER, name="evil", url="subprocess:run")
        status, body = api(url, "POST", "/api/v1/jobClusters", evil, OPERATE)
        assert status == 400 and "not in an allowed package" in body["error"], body
        status, body = api(url, "POST", "/api/v1/jobClusters/guarded/actions/updateArtifact",
                           {"url": "subprocess:run", "version": "2", "user": "u"}, OPERATE)
        assert status == 400 and "not in an allowed package" in body["error"], body
        status, body = api(url, "POST", "/api/v1/jobClusters/guarded/jobs", {"user": "u", "url": "subprocess:run"},
                           OPERATE)  # a submission naming its own entry point meets the checker's refusal
        assert status == 400 and "not in an allowed package" in body["error"], body

        env = dict(os.environ, MANTIS_TOKEN=OPERATE)
        delete = [sys.executable, "-m", "mantis.cli", "cluster", "delete", "guarded", "--master", url]
        anonymous = subprocess.run(delete, capture_output=True, text=True, timeout=60,
                                   env={k: v for k, v in env.items() if k != "MANTIS_TOKEN"})
        assert anonymous.returncode == 1 and anonymous.stderr.startswith("mantis: error: 401"), anonymous.stderr
        assert subprocess.run(delete, capture_output=True, text=True, timeout=60, env=env).returncode == 0
        assert api(url, "GET", "/api/v1/jobClusters/guarded")[0] == 404
    finally:
        master.stop()
    log = (tmp_path / "master.log").read_text()
    assert "401" in log or "refused" in log, "requests were logged"
    assert READ not in log and OPERATE not in log and ADMIN not in log


def _answers(url: str) -> bool:
    try:
        return api(url, "GET", "/api/v1/masterInfo")[0] == 200
    except OSError:
        return False
