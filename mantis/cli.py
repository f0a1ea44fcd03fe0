"""The ``mantis`` command: run a master or an agent, bring up the demo, drive the API.

Service commands: ``master``, ``agent``, ``up`` (master + local agent + demo cluster and
job, printing the job's live output until Ctrl-C).  Client commands talk to a master's
REST API (``--master URL`` or $MANTIS_MASTER, default http://127.0.0.1:8100):
``cluster create|list|get|delete``, ``job submit|list|get|kill|scale``, ``stream``.
Any error is one line on stderr and exit status 1 (2 for usage errors).

The service commands import the master, the actors and ZooKeeper's client inside the
command that runs them: no cycle forces it, but a client command such as ``mantis job
list`` then starts without loading Tornado, Thespian and kazoo.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from mantis import config as config_module  # stdlib only: cheap for every command

DEFAULT_MASTER = os.environ.get("MANTIS_MASTER", "http://127.0.0.1:8100")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class CliError(Exception):
    """A failure reported as one line on stderr."""


def auth_headers() -> dict:
    """The bearer token from $MANTIS_TOKEN as a header, when set (never printed)."""
    token = os.environ.get("MANTIS_TOKEN", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


# -- HTTP client ---------------------------------------------------------------------

def call(master: str, method: str, path: str, body=None, timeout: float = 15.0, _redirects: int = 0):
    """Send a request to the master's API; return the decoded JSON or raise CliError.

    A standby's redirect to the leader is followed for every method."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{master.rstrip('/')}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json", **auth_headers()})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        location = exc.headers.get("Location")
        if exc.code in (307, 308) and location and _redirects < 3:
            # A standby master names the leader; send the same request there.
            return call(location.rpartition(path)[0] or master, method, path, body, timeout, _redirects + 1)
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise CliError(f"{exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach the master at {master}: {getattr(exc, 'reason', exc)}") from None
    except ValueError as exc:  # a malformed URL from a bad --master or name
        raise CliError(f"bad request {path!r}: {exc}") from None
    return json.loads(raw) if raw else None


def leader_url(hosts: str, path: str) -> str:
    """The leading master's API URL, from its description in ZooKeeper; CliError if none."""
    from mantis.ha.leader_election import LeaderElectionError, find_leader

    try:
        leader = find_leader(hosts, path, timeout=5.0)
    except LeaderElectionError as exc:
        raise CliError(str(exc)) from None
    if not leader or not leader.get("apiUrl"):
        raise CliError(f"no master leads at {hosts}{path} right now")
    return leader["apiUrl"]


def stream_output(master: str, job_id: str, limit: int = 0, out=sys.stdout, stop=None) -> int:
    """Print the job's output (SSE) one JSON event per line; return the count printed."""
    req = urllib.request.Request(f"{master.rstrip('/')}/api/v1/jobs/{job_id}/output", headers=auth_headers())
    printed = 0
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            for raw in resp:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("data: "):
                    print(line[6:], file=out, flush=True)
                    printed += 1
                    if (limit and printed >= limit) or (stop is not None and stop.is_set()):
                        break
    except urllib.error.HTTPError as exc:
        raise CliError(f"{exc.code}: {json.loads(exc.read()).get('error', exc.reason)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"output stream of {job_id} broke: {getattr(exc, 'reason', exc)}") from None
    return printed


def _print(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


def _read_json_file(path: str):
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        return json.loads(text)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from None


def _key_values(items: list[str], what: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{what} {item!r} must look like name=value")
        out[key] = value
    return out


# -- service commands ----------------------------------------------------------------

def _load_config(args) -> tuple[config_module.Config, list[str]]:
    """The config a service command names (``--config``, ``--set`` and its own flags,
    which become overrides too), and the overrides, for a local agent to be given the same."""
    overrides = list(args.set or [])
    for flag, key in (("api_port", "master.api_port"), ("admin_port", "master.admin_port"),
                      ("store_path", "store.path"), ("base", "master.actor_system_base"),
                      ("heartbeat_timeout", "workers.heartbeat_timeout_s")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if getattr(args, "no_local_agent", False):
        overrides.append("master.local_agent=false")
    try:
        return config_module.load(args.config, overrides), overrides
    except config_module.ConfigError as exc:
        raise CliError(str(exc)) from None


def cmd_master(args) -> int:
    from webapi.server import run_master

    config, overrides = _load_config(args)
    run_master(config, args.config, overrides)
    return 0


def cmd_worker(args) -> int:
    # A worker run by a resource manager (a Mesos task): its spec is in the environment.
    from mantis.runtime.plain_worker import SPEC_VAR, run_plain_worker

    if SPEC_VAR not in os.environ:
        raise CliError(f"{SPEC_VAR} is not set: `mantis worker` runs a worker that a Mesos task describes")
    return run_plain_worker()


def cmd_agent(args) -> int:
    from actors.agent_runner import run_agent

    overrides = list(args.set or [])
    for flag, key in (("id", "agent.id"), ("agent_admin_port", "agent.admin_port"), ("cpus", "agent.cpus"),
                      ("mem", "agent.mem_mb"), ("ports", "agent.ports"), ("hostname", "agent.hostname")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    attributes = _key_values(args.attribute, "attribute")
    if attributes:
        pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in attributes.items())
        overrides.append("agent.attributes={" + pairs + "}")
    args.set = overrides
    config, _ = _load_config(args)
    master = args.master if args.master.startswith("http") else f"http://{args.master}"
    if args.simulate is not None:
        from actors.simulated_agents import run_simulated_agents

        if args.simulate < 1:
            raise CliError("--simulate needs at least 1 agent")
        if not (0 <= args.fail_rate <= 1 and 0 <= args.silence_rate <= 1):
            raise CliError("--fail-rate and --silence-rate are probabilities between 0 and 1")

        # --id names the agents (<id>-0..), so several simulating processes can share a master.
        run_simulated_agents(config, master, args.simulate, seed=args.seed, fail_rate=args.fail_rate,
                             silence_rate=args.silence_rate, prefix=args.id or "sim")
        return 0
    run_agent(config, master)
    return 0


DEMO_CLUSTER = {
    "name": "demo", "user": "mantis-up", "url": "mantis.examples.synthetic:job", "version": "1",
    "parameters": [{"name": "rate", "value": 5}],
    "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                        "scalingPolicy": {"min": 1, "max": 4},
                                        "machineDefinition": {"cpuCores": 0.5, "memoryMB": 256}}}},
    "labels": [{"name": "origin", "value": "mantis up"}],
}


def cmd_up(args) -> int:
    from mantis import console
    from webapi.server import run_master

    config, overrides = _load_config(args)
    log = logging.getLogger("mantis.up")

    def demo(url: str, stop) -> None:
        def run():
            try:
                try:
                    call(url, "POST", "/api/v1/jobClusters", DEMO_CLUSTER)
                    log.info("created job cluster demo")
                except CliError as exc:
                    if not str(exc).startswith("409"):
                        raise
                # The cluster actor itself answers this, so a just-recovered job is not missed.
                active = call(url, "GET", "/api/v1/jobClusters/demo")["activeJobs"]
                job_id = active[0] if active else call(
                    url, "POST", "/api/v1/jobClusters/demo/jobs", {"user": "mantis-up"})["jobMetadata"]["jobId"]
                log.info("streaming the output of %s (Ctrl-C to stop)", job_id)
                print(console.status_line(url, job_id, args.logs), file=sys.stderr, flush=True)
                deadline = time.time() + 120
                while not stop.is_set() and time.time() < deadline:
                    try:
                        stream_output(url, job_id, limit=args.limit)
                        if args.limit:
                            break
                    except CliError as exc:
                        log.info("waiting for output: %s", exc)
                    time.sleep(1)
            except CliError as exc:
                log.error("demo failed: %s", exc)
                print(f"mantis up: the demo failed: {exc}", file=sys.stderr, flush=True)
            finally:
                if args.limit:
                    stop.set()

        threading.Thread(target=run, name="demo", daemon=True).start()

    run_master(config, args.config, overrides, on_ready=lambda url, stop: demo(url, _AsyncStop(stop)),
               stop_local_agent=True, agent_log=args.logs.agent if args.logs else None)
    return 0


class _AsyncStop:
    """A thread-side view of the master's asyncio stop event."""

    def __init__(self, event):
        import asyncio

        self.event, self.loop = event, asyncio.get_running_loop()

    def is_set(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:
            pass  # the loop has already closed: the master is stopping anyway


# -- client commands -----------------------------------------------------------------

def cmd_cluster(args) -> int:
    m = args.master
    if args.action == "create":
        _print(call(m, "POST", "/api/v1/jobClusters", _read_json_file(args.file)))
    elif args.action == "list":
        for c in call(m, "GET", "/api/v1/jobClusters")["list"]:
            state = "Disabled" if c["disabled"] else "Enabled"
            print(f"{c['name']}\t{state}\t{c['url']}\tactive={len(c['activeJobs'])}")
    elif args.action == "get":
        _print(call(m, "GET", f"/api/v1/jobClusters/{quote(args.name)}"))
    elif args.action == "delete":
        call(m, "DELETE", f"/api/v1/jobClusters/{quote(args.name)}?{urlencode({'user': args.user})}")
        print(f"deleted job cluster {args.name}")
    return 0


def cmd_job(args) -> int:
    m = args.master
    if args.action == "submit":
        body = _read_json_file(args.file) if args.file else {}
        params = _key_values(args.param, "parameter")
        if params:
            body["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
        body.setdefault("user", args.user)
        _print(call(m, "POST", f"/api/v1/jobClusters/{quote(args.cluster)}/jobs", body))
    elif args.action == "list":
        query = urlencode({"compact": "true", "activeOnly": "false" if args.all else "true"})
        path = f"/api/v1/jobClusters/{quote(args.cluster)}/jobs" if args.cluster else "/api/v1/jobs"
        for j in call(m, "GET", f"{path}?{query}")["list"]:
            workers = ",".join(f"{k}={v}" for k, v in sorted(j["statesSummary"].items()))
            print(f"{j['jobId']}\t{j['state']}\t{workers}")
    elif args.action == "get":
        _print(call(m, "GET", f"/api/v1/jobs/{quote(args.job_id)}"))
    elif args.action == "kill":
        query = urlencode({"user": args.user, "reason": args.reason})
        call(m, "DELETE", f"/api/v1/jobs/{quote(args.job_id)}?{query}")
        print(f"kill of {args.job_id} accepted")
    elif args.action == "scale":
        call(m, "POST", f"/api/v1/jobs/{quote(args.job_id)}/actions/scaleStage",
             {"JobId": args.job_id, "StageNumber": args.stage, "NumWorkers": args.workers,
              "User": args.user, "Reason": args.reason})
        print(f"stage {args.stage} of {args.job_id} scaled to {args.workers} worker(s)")
    elif args.action == "events":
        # One line per event, oldest first: time (UTC), type, what happened and why.
        for e in call(m, "GET", f"/api/v1/jobs/{quote(args.job_id)}/events")["list"]:
            at = time.strftime("%H:%M:%S", time.gmtime(e["at"] / 1000))
            print(f"{at}\t{e['type']}\t{e['message']}")
    return 0


def cmd_agents(args) -> int:
    m = args.master
    if args.action == "list":
        for a in call(m, "GET", "/api/v1/agents")["list"]:
            attrs = ",".join(f"{k}={v}" for k, v in sorted(a.get("attributes", {}).items()))
            state = "disabled" if a.get("disabled") else "enabled"
            print(f"{a['agentId']}\t{a['hostname']}\t{state}\t{attrs}\tworkers={len(a.get('workers', []))}")
    else:
        if not args.agent_id:
            raise CliError(f"agents {args.action} needs an agent id")
        _print(call(m, "POST", f"/api/v1/agents/{args.agent_id}/actions/{args.action}", {"user": args.user}))
    return 0


def cmd_pending(args) -> int:
    for p in call(args.master, "GET", "/api/v1/pendingWorkers")["list"]:
        print(f"{p['workerId']}\t" + "; ".join(p["reasons"]))
    return 0


def cmd_deploy(args) -> int:
    from mantis import deploy

    def client(method, path, body=None):
        return call(args.master, method, path, body)

    try:
        desired = deploy.load(args.path)
    except deploy.DeployError as exc:
        raise CliError(str(exc)) from None
    changes = deploy.plan(desired, deploy.read_master(client), prune=getattr(args, "prune", False))
    for line in deploy.render(changes):
        print(line)
    if args.action == "apply" and changes and not args.dry_run:
        deploy.apply_changes(client, changes, args.user)
    elif args.action == "apply" and changes:
        print("dry run: nothing was changed")
    return 0


def cmd_stream(args) -> int:
    try:
        stream_output(args.master, args.job_id, limit=args.limit)
    except KeyboardInterrupt:
        pass
    return 0


# -- parser ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mantis", description="A Mantis-style stream-processing platform.")
    sub = p.add_subparsers(dest="command", required=True)

    def service(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--config", help="TOML config file (defaults: conf/master.toml)")
        s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a setting")
        s.add_argument("--api-port", type=int)
        s.add_argument("--admin-port", type=int)
        s.add_argument("--store-path")
        s.add_argument("--base", choices=["multiprocTCPBase", "simpleSystemBase"])
        s.add_argument("--heartbeat-timeout", type=float)
        s.add_argument("--no-local-agent", action="store_true")
        s.add_argument("-v", "--verbose", action="store_true")
        return s

    service("master", "run a master")
    sub.add_parser("worker", help="run one worker from MANTIS_WORKER_SPEC (how a Mesos task runs a worker)")
    up = service("up", "run a master, a local agent and the demo job, printing its output")
    up.add_argument("--limit", type=int, default=0, help="stop after this many events (0: until Ctrl-C)")
    up.add_argument("--log-dir", default="mantis-logs", help="where the master's and agent's logs go "
                    "(master.log, agent.log) unless --verbose")
    agent = service("agent", "run an agent that offers this machine to a master")
    agent.add_argument("--master", default=DEFAULT_MASTER.replace("http://", ""), help="master HOST:PORT")
    agent.add_argument("--id")
    agent.add_argument("--agent-admin-port", type=int)
    agent.add_argument("--cpus", type=float)
    agent.add_argument("--mem", type=float, help="memory in MB")
    agent.add_argument("--ports", help="port ranges, e.g. 31000-31999")
    agent.add_argument("--hostname")
    agent.add_argument("--attribute", action="append", metavar="NAME=VALUE")
    agent.add_argument("--simulate", type=int, metavar="N",
                       help="run N simulated agents (no worker processes) in this process, for scale tests; "
                            "--cpus/--mem/--ports/--attribute apply to each, --id is their name prefix")
    agent.add_argument("--seed", type=int, default=0, help="with --simulate: seed of every random choice")
    agent.add_argument("--fail-rate", type=float, default=0.0,
                       help="with --simulate: chance per heartbeat that a Started worker fails")
    agent.add_argument("--silence-rate", type=float, default=0.0,
                       help="with --simulate: chance per heartbeat that an agent goes silent for 3-15 s")

    # Client options go on every leaf command, so they may follow the command's own words.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--master", default=DEFAULT_MASTER, help="master API URL")
    common.add_argument("--user", default=os.environ.get("USER", "unknown"))
    common.add_argument("--zookeeper", default=os.environ.get("MANTIS_ZOOKEEPER"),
                        help="find the leading master in this ZooKeeper ensemble (overrides --master)")
    common.add_argument("--leader-path", default=os.environ.get("MANTIS_LEADER_PATH", "/mantis/leader"))

    def group(name, help_):
        return sub.add_parser(name, help=help_).add_subparsers(dest="action", required=True)

    csub = group("cluster", "job clusters")
    csub.add_parser("create", parents=[common]).add_argument("file", help="cluster definition JSON file, or -")
    csub.add_parser("list", parents=[common])
    csub.add_parser("get", parents=[common]).add_argument("name")
    csub.add_parser("delete", parents=[common]).add_argument("name")

    jsub = group("job", "jobs")
    submit = jsub.add_parser("submit", parents=[common])
    submit.add_argument("cluster")
    submit.add_argument("--param", action="append", metavar="NAME=VALUE")
    submit.add_argument("--file", help="job definition JSON file")
    listing = jsub.add_parser("list", parents=[common])
    listing.add_argument("--cluster")
    listing.add_argument("--all", action="store_true", help="ended jobs too")
    jsub.add_parser("get", parents=[common]).add_argument("job_id")
    kill = jsub.add_parser("kill", parents=[common])
    kill.add_argument("job_id")
    kill.add_argument("--reason", default="killed from the CLI")
    scale = jsub.add_parser("scale", parents=[common])
    scale.add_argument("job_id")
    scale.add_argument("stage", type=int)
    scale.add_argument("workers", type=int)
    scale.add_argument("--reason", default="scaled from the CLI")
    jsub.add_parser("events", parents=[common]).add_argument("job_id")

    agents = sub.add_parser("agents", parents=[common], help="agents: list, disable, enable, drain")
    agents.add_argument("action", choices=["list", "disable", "enable", "drain"])
    agents.add_argument("agent_id", nargs="?")
    sub.add_parser("pending", parents=[common], help="workers waiting for placement, with the reasons")

    dsub = group("deploy", "make the master's job clusters match definition files")
    diff = dsub.add_parser("diff", parents=[common], help="show what apply would change")
    diff.add_argument("path", help="a cluster definition file (YAML or JSON) or a folder of them")
    diff.add_argument("--prune", action="store_true", help="also show clusters no file names")
    apply = dsub.add_parser("apply", parents=[common], help="create, update, submit (and prune) to match")
    apply.add_argument("path", help="a cluster definition file (YAML or JSON) or a folder of them")
    apply.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    apply.add_argument("--prune", action="store_true", help="also delete clusters no file names")

    stream = sub.add_parser("stream", parents=[common], help="print a job's live output")
    stream.add_argument("job_id")
    stream.add_argument("--limit", type=int, default=0)
    return p


COMMANDS = {"master": cmd_master, "agent": cmd_agent, "up": cmd_up, "cluster": cmd_cluster,
            "job": cmd_job, "stream": cmd_stream, "deploy": cmd_deploy, "agents": cmd_agents, "pending": cmd_pending,
            "worker": cmd_worker}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Services log every event; client commands print only their answer or one error line.
    quiet = logging.INFO if args.command in ("master", "agent", "up", "worker") else logging.WARNING
    # `up --verbose` brings the services' INFO logs back to the terminal; otherwise they go to files.
    level = logging.DEBUG if getattr(args, "verbose", False) and args.command != "up" else quiet
    args.logs = None
    if args.command == "up" and not args.verbose:
        from mantis import console

        args.logs = console.logs_to_files(args.log_dir)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.__stderr__ if args.logs else None)
    try:
        if getattr(args, "zookeeper", None):
            args.master = leader_url(args.zookeeper, args.leader_path)
        return COMMANDS[args.command](args) or 0
    except (CliError, config_module.ConfigError) as exc:
        print(f"mantis: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
