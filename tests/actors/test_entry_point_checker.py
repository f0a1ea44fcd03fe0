"""EntryPointCheckerActor: job entry points are checked in child processes, never in the
actor, over both Thespian system bases."""
import os
import time

import pytest
from thespian.actors import ActorExitRequest

from actors.actor_system import start_actor_system
from actors.entry_point_checker import EntryPointCheckerActor
from actors.messages import CheckEntryPoint, DescribeActors, Done, EntryPointChecked, InitEntryPointChecker
from tests.support import make_config, reap_forked_leftovers, wait_for

GOOD = "tests.job_fixtures.entry_point_jobs:job"
HANGS = "tests.job_fixtures.hangs_on_import:job"
EXITS = "tests.job_fixtures.exits_on_import:job"
# Short, yet long enough that a good check always ends first on a busy two-core machine.
TIMEOUT_S = 2.0


class Checker:
    """One EntryPointCheckerActor in a fresh actor system, and ways to talk to it."""

    def __init__(self, system, address):
        self.system, self.address = system, address

    def check(self, url, parameters=None, token="t", timeout=10.0) -> EntryPointChecked:
        reply = self.system.ask(self.address, CheckEntryPoint(url, parameters or {}, token), timeout)
        assert isinstance(reply, EntryPointChecked), reply
        assert reply.token == token
        return reply

    def send(self, url, parameters=None, token="t") -> None:
        self.system.tell(self.address, CheckEntryPoint(url, parameters or {}, token))

    def answers(self, count, timeout=10.0) -> list[tuple[float, EntryPointChecked]]:
        """The next ``count`` answers, in arrival order, each with its arrival time."""
        got, deadline = [], time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            reply = self.system.listen(max(0.01, deadline - time.monotonic()))
            if isinstance(reply, EntryPointChecked):
                got.append((time.monotonic(), reply))
        assert len(got) == count, got
        return got

    def describe(self) -> dict:
        reply = self.system.ask(self.address, DescribeActors(), 10.0)
        assert isinstance(reply, Done), reply
        return reply.body


def start_checker(tmp_path, base, **settings) -> tuple:
    config = make_config(tmp_path, base=base, **{f"master.{k}": v for k, v in settings.items()})
    system = start_actor_system(base, int(config["master"]["admin_port"]), config["master"]["host"])
    address = system.createActor(EntryPointCheckerActor)
    return system, address, config


@pytest.fixture(params=["simpleSystemBase", "multiprocTCPBase"])
def base(request):
    return request.param


@pytest.fixture
def checker(tmp_path, base):
    system, address, config = start_checker(tmp_path, base, entry_point_check_timeout_s=TIMEOUT_S)
    assert isinstance(system.ask(address, InitEntryPointChecker(config), 10.0), Done)
    yield Checker(system, address)
    system.shutdown()
    if base == "multiprocTCPBase":
        reap_forked_leftovers()


def alive(pid: int) -> bool:
    """Whether ``pid`` exists at all (a zombie counts: nobody reaped it)."""
    return os.path.exists(f"/proc/{pid}")


def test_a_good_entry_point_passes(checker):
    assert checker.check(GOOD, {"rate": "5"}, token=("cluster", 7)).error is None


def test_a_bad_parameter_or_module_is_refused_with_the_reason(checker):
    assert checker.check(GOOD, {"rate": "-1"}).error == "parameter 'rate' = -1 is invalid: must be at least 0"
    assert "unknown parameter 'speed'" in checker.check(GOOD, {"speed": "1"}).error
    assert checker.check("tests.job_fixtures.no_such_module:job").error.startswith(
        "module 'tests.job_fixtures.no_such_module' not found")
    assert "must look like" in checker.check("no-colon").error


def test_a_hanging_module_times_out_and_delays_no_other_check(checker):
    sent = time.monotonic()
    checker.send(HANGS, token="hang")
    checker.send(GOOD, token="good")
    (first_at, first), (second_at, second) = checker.answers(2, timeout=10.0)
    assert first.token == "good" and first.error is None
    assert first_at - sent < TIMEOUT_S  # answered while the hanging child still runs
    assert second.token == "hang"
    assert second.error == f"entry point {HANGS} did not load within 2s"
    assert TIMEOUT_S <= second_at - sent < TIMEOUT_S + 2.0
    assert checker.describe()["in_flight"] == []


def test_a_module_that_exits_on_import_gives_its_exit_status(checker):
    error = checker.check(EXITS).error
    assert error == (f"entry point {EXITS}: the check process ended with exit status 3 "
                     "(exits_on_import: bailing out)")


def test_the_cache_answers_a_repeat_and_identical_checks_share_one_child(checker):
    assert checker.check(GOOD, {"rate": "2"}).error is None
    assert checker.check(GOOD, {"rate": "2"}, token="again").error is None
    described = checker.describe()
    assert described["children_started"] == 1 and described["cache_hits"] == 1
    # Three identical checks at once: one child, three answers, each with its own token.
    for token in ("a", "b", "c"):
        checker.send(GOOD, {"rate": "3"}, token=token)
    answers = checker.answers(3)
    assert sorted(reply.token for _, reply in answers) == ["a", "b", "c"]
    assert all(reply.error is None for _, reply in answers)
    assert checker.describe()["children_started"] == 2
    # A refusal is cached too.
    checker.check(GOOD, {"rate": "-1"})
    checker.check(GOOD, {"rate": "-1"})
    assert checker.describe()["children_started"] == 3


def test_a_cached_answer_expires(tmp_path, base):
    system, address, config = start_checker(tmp_path, base, entry_point_cache_s=0.2)
    try:
        c = Checker(system, address)
        assert "not initialised" in c.check(GOOD).error
        assert isinstance(system.ask(address, InitEntryPointChecker(config), 10.0), Done)
        c.check(GOOD)
        time.sleep(0.3)
        c.check(GOOD)
        assert c.describe()["children_started"] == 2
    finally:
        system.shutdown()
        if base == "multiprocTCPBase":
            reap_forked_leftovers()


def test_no_check_process_outlives_the_actor_system(tmp_path, base):
    system, address, config = start_checker(tmp_path, base, entry_point_check_timeout_s=30.0)
    try:
        system.ask(address, InitEntryPointChecker(config), 10.0)
        c = Checker(system, address)
        c.send(HANGS, token="hang")
        c.send(HANGS, {"other": "1"}, token="hang too")
        flight = wait_for(lambda: len(c.describe()["in_flight"]) == 2 and c.describe()["in_flight"],
                          timeout=10, what="two checks in flight")
        pids = [check["pid"] for check in flight]
        assert all(alive(pid) for pid in pids)
    finally:
        if base == "simpleSystemBase":
            # simpleSystemBase's shutdown never tells top-level actors to exit (the
            # multiproc base does), so its owner must.
            system.tell(address, ActorExitRequest())
        system.shutdown()
        if base == "multiprocTCPBase":
            reap_forked_leftovers()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=5, what="check processes gone")


def test_a_check_process_ends_itself_if_nobody_kills_it(tmp_path):
    """The backstop for a checker that dies without cleaning up: the child's own alarm."""
    import json
    import subprocess
    import sys

    request = {"url": HANGS, "parameters": {}, "sys_path": sys.path, "deadline_s": 1.0}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mantis.sdk.entry_point_check"], input=json.dumps(request),
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == -14 and done.stdout == ""  # SIGALRM
    assert time.monotonic() - started < 3.0
