"""The web UI in a real browser: headless Chromium (Debian's chromium and chromium-driver,
through Selenium) against a real master and agent.

Each test gets its own master and agent (the ``cluster`` fixture); one browser serves the
module.  Waits are explicit and bounded; screenshots go under pytest's tmp dir, and also to
``docs/`` when ``MANTIS_UI_DOCS=1`` (how docs/ui-overview.png and docs/ui-job.png are made).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from mantis.tooling.local_processes import wait_for
from webapi import web_ui

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (scripts/install_browser.sh)")

WAIT_S = 45
DOCS = Path(__file__).resolve().parents[2] / "docs"

KEYED = {"name": "ui_keyed", "url": "mantis.examples.keyed_count:job", "version": "1",
         "parameters": [{"name": "rate", "value": 200}, {"name": "keys", "value": 20}],
         "schedulingInfo": {"stages": {
             "1": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}},
             "2": {"numberOfInstances": 2, "scalable": True, "scalingPolicy": {"min": 1, "max": 8},
                   "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}},
         "jobSla": {"durationType": "Perpetual"}}
CLICKS = {"name": "ui_clicks", "url": "mantis.examples.synthetic:job", "version": "1",
          "parameters": [{"name": "rate", "value": 100}],
          "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                              "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}},
          "jobSla": {"durationType": "Perpetual"}}

# More cpus than the test agent has (make_config gives it 8): its worker waits.
BIG = {**CLICKS, "name": "ui_big",
       "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                           "machineDefinition": {"cpuCores": 64, "memoryMB": 128}}}}}


@pytest.fixture(scope="module")
def on_sigterm():
    """Kills to carry out at once if pytest is sent SIGTERM while this module runs (then
    SIGTERM does what it did before): by default Python would die without running any
    teardown, leaving the browser and the services, which run in sessions of their own."""
    kills: list = []
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum, frame):
        for kill in reversed(kills):
            try:
                kill()
            except Exception:  # kill the others all the same
                pass
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield kills
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def live(cluster, on_sigterm):
    """This test's master and agent (the ``cluster`` fixture), SIGKILLed on SIGTERM."""
    on_sigterm.append(cluster.kill9)
    yield cluster
    on_sigterm.remove(cluster.kill9)


@pytest.fixture(scope="module")
def browser(on_sigterm):
    """One headless Chromium for the module, gone (with its driver) when the module ends,
    when a test fails, and on SIGTERM.

    The driver runs in a session of its own, so its process group holds it and every
    Chromium process: killing that group leaves nothing behind.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    # The network log lets a test see the headers a request really carried.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER, popen_kw={"start_new_session": True})

    def kill_group() -> None:
        if service.process is not None:
            try:
                os.killpg(service.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    on_sigterm.append(kill_group)
    try:
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        kill_group()
        on_sigterm.remove(kill_group)


@pytest.fixture
def ui(browser, live, tmp_path):
    """The browser on the UI of this test's master, the token setting cleared.

    A wait that times out leaves a screenshot and the browser's console in ``tmp_path``.
    """
    browser.get(live.url + "/")
    browser.execute_script("localStorage.clear()")
    browser.get(live.url + "/")
    browser.failure_dir = tmp_path
    yield browser
    browser.failure_dir = None
    browser.get("about:blank")  # closes the page's streams before the master stops


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Write a screenshot as a test artifact (and to docs/ when MANTIS_UI_DOCS=1)."""
    folder = tmp_path_factory.mktemp("ui-screenshots")

    def take(driver, name: str) -> Path:
        path = folder / f"{name}.png"
        width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
        page_height = driver.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(max(page_height + 120, height), 2400))  # the whole page
        try:
            driver.save_screenshot(str(path))
        finally:
            driver.set_window_size(width, height)
        if os.environ.get("MANTIS_UI_DOCS") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(path, DOCS / f"{name}.png")
        return path

    return take


def until(driver, predicate, what: str, timeout: float = WAIT_S):
    """Wait for ``predicate(driver)`` to be truthy, tolerating re-rendered elements."""
    def check(d):
        try:
            return predicate(d)
        except StaleElementReferenceException:
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check, message=f"waiting for {what}")
    except TimeoutException:
        folder = getattr(driver, "failure_dir", None)
        if folder is not None:
            driver.save_screenshot(str(folder / "timeout.png"))
            (folder / "console.json").write_text(json.dumps(driver.get_log("browser"), indent=1))
        raise


def requests_sent(driver) -> list[dict]:
    """The requests the page sent since the last call (Chrome's network log)."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent.append(message["params"]["request"])
    return sent


def items(body) -> list:
    """A list answer's items, whether an envelope ``{list, ...}`` or a bare list."""
    return body if isinstance(body, list) else body["list"]


def rows(driver, css: str):
    return driver.find_elements(By.CSS_SELECTOR, css)


def worker_states(driver, stage: int | None = None) -> list[str]:
    css = "#workers tr[data-worker]" + (f'[data-stage="{stage}"]' if stage else "")
    return [r.get_attribute("data-state") for r in rows(driver, css)]


def all_started(driver, count: int, stage: int | None = None) -> bool:
    states = worker_states(driver, stage)
    return len(states) == count and set(states) == {"Started"}


def submit_by_api(cluster, definition: dict) -> str:
    status, body = cluster.call("POST", "/api/v1/jobClusters", definition)
    assert status == 201, body
    status, job = cluster.call("POST", f"/api/v1/jobClusters/{definition['name']}/jobs",
                               {"name": definition["name"], "user": "test"})
    assert status == 201, job
    return job["jobMetadata"]["jobId"]


def open_job(driver, cluster, job_id: str) -> None:
    driver.get(f"{cluster.url}/#/job/{job_id}")
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".job-head h2").text == job_id, f"{job_id}'s page")


def mark_page(driver) -> None:
    """Leave a mark in the page's window: it survives anything but a reload."""
    driver.execute_script("window.__sameDocument = 'yes'")


def page_not_reloaded(driver) -> bool:
    return driver.execute_script("return window.__sameDocument") == "yes"


def test_cluster_created_and_submitted_from_the_page_reaches_started(ui, cluster, shots):
    until(ui, lambda d: "No clusters yet" in d.find_element(By.ID, "clusters").text, "the empty cluster list")
    ui.find_element(By.CSS_SELECTOR, "#create summary").click()
    area = ui.find_element(By.ID, "definition")
    area.clear()
    area.send_keys(json.dumps(KEYED))
    ui.find_element(By.ID, "create-cluster").click()
    until(ui, lambda d: rows(d, 'tr[data-cluster="ui_keyed"]'), "the new cluster's row")
    assert cluster.call("GET", "/api/v1/jobClusters/ui_keyed")[0] == 200

    mark_page(ui)
    ui.find_element(By.CSS_SELECTOR, 'tr[data-cluster="ui_keyed"] button[data-act="submit"]').click()
    until(ui, lambda d: d.current_url.endswith("#/job/ui_keyed-1"), "the job's page after submit")
    until(ui, lambda d: all_started(d, 3), "three Started workers")
    assert page_not_reloaded(ui)
    # The graph draws source, both stages and sink; rates come from two heartbeats' counters.
    until(ui, lambda d: "in 0.0/s" not in d.find_element(By.CSS_SELECTOR, '.stage[data-stage="2"]').text,
          "stage 2's live input rate")
    graph = ui.find_element(By.ID, "graph").text
    for label in ("source", "stage 1 · 1/1 started", "stage 2 · 2/2 started", "sink"):
        assert label in graph
    until(ui, lambda d: d.find_elements(By.CSS_SELECTOR, "#status li"), "status changes pushed by the stream")
    ui.find_element(By.ID, "tail-toggle").click()
    until(ui, lambda d: len(d.find_element(By.ID, "tail").text.splitlines()) >= 8, "the output tail")
    shots(ui, "ui-job")

    ui.find_element(By.LINK_TEXT, "← overview").click()
    until(ui, lambda d: "Started 3" in d.find_element(By.CSS_SELECTOR, 'tr[data-job="ui_keyed-1"]').text,
          "the job's worker counts on the overview")
    agent = ui.find_element(By.CSS_SELECTOR, "#agents tr[data-agent]").text
    assert "ui_keyed-1/w1" in agent
    submit_by_api(cluster, BIG)  # so that the overview's picture shows a pending worker too
    until(ui, lambda d: "lacked cpus" in d.find_element(By.ID, "pending").text, "the pending worker")
    shots(ui, "ui-overview")


def test_output_tail_receives_filtered_sampled_events(ui, cluster):
    job_id = submit_by_api(cluster, CLICKS)
    open_job(ui, cluster, job_id)
    until(ui, lambda d: all_started(d, 1), "the worker Started")
    ui.find_element(By.ID, "tail-filter").send_keys('event == "click"')
    requests_sent(ui)  # only what the tail sends from here on
    ui.find_element(By.ID, "tail-sample").send_keys("200")
    ui.find_element(By.ID, "tail-toggle").click()
    until(ui, lambda d: len(d.find_element(By.ID, "tail").text.splitlines()) >= 5, "five events in the tail")
    events = [json.loads(line) for line in ui.find_element(By.ID, "tail").text.splitlines()]
    assert {e["event"] for e in events} == {"click"}
    assert "events" in ui.find_element(By.ID, "tail-count").text
    tails = [r["url"] for r in requests_sent(ui) if f"/api/v1/jobs/{job_id}/output" in r["url"]]
    assert tails and "sampleMSec=200" in tails[0] and "filter=event+%3D%3D+%22click%22" in tails[0], tails

    # A filter the master refuses is reported in the page, not swallowed.
    ui.find_element(By.ID, "tail-toggle").click()  # stop
    box = ui.find_element(By.ID, "tail-filter")
    box.clear()
    box.send_keys("value >=")
    ui.find_element(By.ID, "tail-toggle").click()
    until(ui, lambda d: "stream ended" in d.find_element(By.ID, "tail-count").text, "the refused filter's message")


def test_scaling_a_stage_shows_new_workers_without_reload(ui, cluster):
    job_id = submit_by_api(cluster, KEYED)
    open_job(ui, cluster, job_id)
    until(ui, lambda d: all_started(d, 3), "three Started workers")
    mark_page(ui)
    Select(ui.find_element(By.ID, "scale-stage")).select_by_value("2")
    count = ui.find_element(By.ID, "scale-count")
    count.clear()
    count.send_keys("4")
    ui.find_element(By.CSS_SELECTOR, "#scale-form button").click()
    until(ui, lambda d: all_started(d, 4, stage=2), "four Started workers in stage 2")
    until(ui, lambda d: "stage 2 · 4/4 started" in d.find_element(By.ID, "graph").text, "the graph's stage 2")
    assert page_not_reloaded(ui)
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    assert [s["numWorkers"] for s in job["stageMetadataList"]] == [1, 4]
    # The job's events, where the master keeps them, show the scaling; else the page says there are none.
    status, events = cluster.call("GET", f"/api/v1/jobs/{job_id}/events")
    if status == 200:
        until(ui, lambda d: any("scal" in li.text.lower() for li in rows(d, "#events li")), "the scaling event")
    else:
        assert status == 404
        until(ui, lambda d: "no events" in d.find_element(By.ID, "events").text, "'no events'")


def test_job_page_streams_come_back_after_the_master_restarts(ui, cluster):
    job_id = submit_by_api(cluster, {**CLICKS, "schedulingInfo": {"stages": {"1": {
        **CLICKS["schedulingInfo"]["stages"]["1"], "scalable": True}}}})
    open_job(ui, cluster, job_id)
    until(ui, lambda d: all_started(d, 1), "the worker Started")
    mark_page(ui)
    requests_sent(ui)  # only what is sent from the restart on
    cluster.master.kill9()
    cluster.start_master()
    wait_for(lambda: cluster.call("GET", "/api/v1/agents")[1], timeout=60, what="agent re-registered")
    status, _ = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                             {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "test", "Reason": "t"})
    assert status == 204
    # Only the status stream writes this log: the page re-opened it on the new master.
    until(ui, lambda d: any(li.text.endswith("worker 2 (stage 1, index 1) Started on 127.0.0.1")
                            for li in rows(d, "#status li")), "worker 2's start, pushed after the restart", 90)
    until(ui, lambda d: all_started(d, 2), "two Started workers")
    assert page_not_reloaded(ui)
    assert any(f"/api/v1/jobStatusStream/{job_id}" in r["url"] for r in requests_sent(ui))


def test_resubmitted_worker_is_replaced_on_the_page(ui, cluster):
    job_id = submit_by_api(cluster, CLICKS)
    open_job(ui, cluster, job_id)
    until(ui, lambda d: all_started(d, 1), "the worker Started")
    mark_page(ui)
    ui.find_element(By.CSS_SELECTOR, 'tr[data-worker="1"] button[data-resubmit]').click()
    until(ui, lambda d: [r.get_attribute("data-worker") for r in rows(d, "#workers tr[data-worker]")] == ["2"]
          and all_started(d, 1), "worker 2 Started in worker 1's place")
    assert page_not_reloaded(ui)
    ui.find_element(By.CSS_SELECTOR, "#replaced-box summary").click()
    until(ui, lambda d: rows(d, '#replaced tr[data-archived="1"]'), "worker 1 among the replaced workers")


def test_pending_worker_shows_its_reason_and_the_job_is_killed_from_the_page(ui, cluster):
    job_id = submit_by_api(cluster, BIG)
    until(ui, lambda d: "lacked cpus" in d.find_element(By.ID, "pending").text, "the pending worker's reason")
    assert job_id in ui.find_element(By.CSS_SELECTOR, "#pending tr.pending").text
    open_job(ui, cluster, job_id)
    until(ui, lambda d: "lacked cpus" in d.find_element(By.CSS_SELECTOR, "#workers td.reason").text,
          "the reason on the job's page")
    assert "stage 1 · 0/1 started" in ui.find_element(By.ID, "graph").text
    assert "no events" in ui.find_element(By.ID, "events").text or ui.find_elements(By.CSS_SELECTOR, "#events li")

    ui.find_element(By.ID, "kill").click()
    until(ui, lambda d: d.find_element(By.ID, "job-state").text not in ("", "Accepted", "Launched"),
          "the killed job's state")
    assert cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]["state"] not in ("Accepted", "Launched")


def test_cluster_and_agent_actions_from_the_overview(ui, cluster):
    job_id = submit_by_api(cluster, CLICKS)
    wait_for(lambda: cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["workerMetadataList"][0]["state"] == "Started",
             timeout=WAIT_S, what="the worker Started")
    ui.refresh()
    # Draining the only agent disables it and moves its worker away: the replacement waits, saying why.
    job_row = f'tr[data-job="{job_id}"]'
    until(ui, lambda d: "Started 1" in d.find_element(By.CSS_SELECTOR, job_row).text, "the job's row")
    ui.find_element(By.CSS_SELECTOR, '#agents button[data-act="drain"]').click()
    until(ui, lambda d: "disabled" in d.find_element(By.CSS_SELECTOR, "#agents tr[data-agent]").text, "agent disabled")
    until(ui, lambda d: job_id in d.find_element(By.ID, "pending").text, "the drained worker's replacement pending")
    reason = ui.find_element(By.CSS_SELECTOR, "#pending td.reason").text
    assert reason
    ui.find_element(By.CSS_SELECTOR, '#agents button[data-act="enable"]').click()
    until(ui, lambda d: "No worker is waiting" in d.find_element(By.ID, "pending").text
          and "Started 1" in d.find_element(By.CSS_SELECTOR, job_row).text, "the replacement Started")
    assert items(cluster.call("GET", "/api/v1/agents")[1])[0]["disabled"] is False
    # Disabling a cluster kills its jobs (as in Mantis): the agent goes first.
    until(ui, lambda d: rows(d, 'tr[data-cluster="ui_clicks"]'), "the cluster's row")
    ui.find_element(By.CSS_SELECTOR, 'tr[data-cluster="ui_clicks"] button[data-act="disableCluster"]').click()
    until(ui, lambda d: "disabled" in d.find_element(By.CSS_SELECTOR, 'tr[data-cluster="ui_clicks"]').text,
          "the cluster shown disabled")
    assert cluster.call("GET", "/api/v1/jobClusters/ui_clicks")[1]["disabled"] is True
    ui.find_element(By.CSS_SELECTOR, 'tr[data-cluster="ui_clicks"] button[data-act="enableCluster"]').click()
    until(ui, lambda d: rows(d, 'tr[data-cluster="ui_clicks"] button[data-act="disableCluster"]'), "enabled again")
    assert cluster.call("GET", "/api/v1/jobClusters/ui_clicks")[1]["disabled"] is False


def test_token_from_the_settings_is_sent_as_bearer(ui, cluster):
    requests_sent(ui)  # drop what earlier pages sent
    box = ui.find_element(By.ID, "token")
    box.send_keys("s3cret-token")
    ui.find_element(By.CSS_SELECTOR, "#token-form button").click()
    assert ui.execute_script("return localStorage.getItem('mantis.token')") == "s3cret-token"

    until(ui, lambda d: any("/api/v1/" in r["url"] and r["headers"].get("Authorization") == "Bearer s3cret-token"
                            for r in requests_sent(d)), "an API request carrying the token")


def test_page_and_modules_are_served_and_unknown_api_paths_stay_json(live):
    cluster = live
    import urllib.request

    with urllib.request.urlopen(cluster.url + "/", timeout=10) as resp:
        page = resp.read().decode()
    assert '<script type="module" src="/ui/main.js">' in page
    with urllib.request.urlopen(cluster.url + "/ui/job.js", timeout=10) as resp:
        assert "javascript" in resp.headers["Content-Type"]
    # What the UI's routes tell the API's OpenAPI document is all served.
    described = web_ui.openapi_paths()
    assert "/" in described and "/ui/main.js" in described and "/ui/style.css" in described
    for path in described:
        with urllib.request.urlopen(cluster.url + path, timeout=10) as resp:
            assert resp.status == 200, path
    status, body = cluster.call("GET", "/api/v1/no-such-thing")
    assert status == 404 and "no such resource" in body["error"]



def test_job_events_render_time_kind_and_message(ui):
    """The events panel reads the events endpoint's envelope: newest first, seconds or ms times."""
    html = ui.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/job.js').then((m) => done(m.renderEvents({list: [
            {at: 1700000000.5, type: 'JobLaunched', message: 'job launched'},
            {time: 1700000001000, kind: 'StageScaled', message: 'stage 2 scaled from 2 to 4 by ui'},
        ], prev: null, next: null, total: 2})));""")
    assert html.index("StageScaled") < html.index("JobLaunched")
    assert "stage 2 scaled from 2 to 4 by ui" in html and "job launched" in html
    assert "no events" in ui.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/job.js').then((m) => done(m.renderEvents({list: [], prev: null, next: null, total: 0})));""")


def test_with_tokens_required_the_page_acts_only_with_a_saved_token(browser, tmp_path, on_sigterm):
    """Where the master requires tokens (its [access] section), a mutation from the page
    without one is refused with the master's message, and succeeds once a token is saved."""
    from mantis.config import ConfigError
    from mantis.tooling.local_processes import LocalCluster
    from tests.support import make_config

    token = "ui-test-admin-token"
    try:
        config = make_config(tmp_path, **{"access.tokens": f'{{"{token}" = "admin"}}'})
    except ConfigError as error:
        pytest.skip(f"this master has no access tokens: {error}")
    guarded = LocalCluster(config, tmp_path)
    on_sigterm.append(guarded.kill9)
    try:
        guarded.start()
        browser.get(guarded.url + "/")
        browser.execute_script("localStorage.clear()")
        browser.get(guarded.url + "/")
        until(browser, lambda d: "No clusters yet" in d.find_element(By.ID, "clusters").text, "the (open) lists")
        browser.find_element(By.CSS_SELECTOR, "#create summary").click()
        area = browser.find_element(By.ID, "definition")
        area.clear()
        area.send_keys(json.dumps(CLICKS))
        browser.find_element(By.ID, "create-cluster").click()
        until(browser, lambda d: "bearer token" in d.find_element(By.ID, "toast").text, "the refusal's message")
        assert guarded.call("GET", "/api/v1/jobClusters/ui_clicks")[0] == 404

        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        browser.find_element(By.CSS_SELECTOR, "#create summary").click()
        area = browser.find_element(By.ID, "definition")
        area.clear()
        area.send_keys(json.dumps(CLICKS))
        browser.find_element(By.ID, "create-cluster").click()
        until(browser, lambda d: rows(d, 'tr[data-cluster="ui_clicks"]'), "the cluster created with the token")
        # An admin action (agents) passes too.
        browser.find_element(By.CSS_SELECTOR, '#agents button[data-act="disable"]').click()
        until(browser, lambda d: "disabled" in d.find_element(By.CSS_SELECTOR, "#agents tr[data-agent]").text,
              "the agent disabled with the token")
    finally:
        browser.get("about:blank")
        guarded.stop()
        on_sigterm.remove(guarded.kill9)
