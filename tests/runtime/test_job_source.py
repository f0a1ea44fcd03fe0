"""The job output source: following, ending, failing and stopping, in this process.

Most tests read a real master's API (``LocalCluster``); the redirect-and-reconnect test
uses a small SSE server of its own, because a standby's redirect needs a ZooKeeper
election and a stream cut at a chosen point needs control of the server.
"""
import asyncio
import threading

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from mantis.runtime.job_source import UpstreamError, UpstreamEvent, job_output_source
from mantis.sdk.job_dsl import Context
from tests.support import job_id_of, started_workers, wait_for

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 40}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


class Collector:
    """What a subscription saw: events, and how it ended."""

    def __init__(self, observable):
        self.events, self.error, self.completed = [], None, threading.Event()
        self.ended = threading.Event()
        self.subscription = observable.subscribe(self.events.append, self._on_error, self._on_completed)

    def _on_error(self, exc):
        self.error = exc
        self.ended.set()

    def _on_completed(self):
        self.completed.set()
        self.ended.set()


def source_threads():
    return [t for t in threading.enumerate() if t.name.startswith("job-source-")]


def run_job(cluster) -> str:
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/synth/jobs", {"user": "test"})
    assert status == 201, body
    wait_for(lambda: started_workers(cluster.call("GET", f"/api/v1/jobs/{job_id_of(body)}")[1]), timeout=60,
             what="worker Started")
    return job_id_of(body)


def test_exactly_one_of_job_id_and_cluster():
    with pytest.raises(ValueError, match="exactly one"):
        job_output_source(Context(job_id="c-1"))
    with pytest.raises(ValueError, match="exactly one"):
        job_output_source(Context(job_id="c-1"), job_id="a-1", cluster="a")


def test_reads_a_job_and_completes_when_it_ends(cluster):
    job_id = run_job(cluster)
    seen = Collector(job_output_source(Context(job_id="chain-1"), job_id=job_id, master=lambda: cluster.url))
    wait_for(lambda: len(seen.events) >= 5, timeout=60, what="upstream events")
    assert all(isinstance(e, UpstreamEvent) and e.job_id == job_id and "id" in e.event for e in seen.events)
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=test&reason=done")[0] == 202
    assert seen.ended.wait(60) and seen.completed.is_set() and seen.error is None
    wait_for(lambda: not source_threads(), timeout=10, what="the source's threads ending")


def test_an_unknown_job_or_cluster_fails_after_the_grace(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    for target in ({"job_id": "synth-9"}, {"cluster": "nocluster"}):
        seen = Collector(job_output_source(Context(job_id="chain-1"), master=lambda: cluster.url,
                                           missing_grace_s=0.5, **target))
        assert seen.ended.wait(30), target
        assert isinstance(seen.error, UpstreamError) and "does not exist" in str(seen.error), seen.error
        assert not seen.completed.is_set()
    wait_for(lambda: not source_threads(), timeout=10, what="the source's threads ending")


def test_dispose_or_context_stopped_ends_the_source_without_completing(cluster):
    job_id = run_job(cluster)
    for how in ("dispose", "stopped"):
        context = Context(job_id="chain-1")
        seen = Collector(job_output_source(context, cluster="synth", master=lambda: cluster.url))
        wait_for(lambda s=seen: len(s.events) >= 3, timeout=60, what="upstream events")
        assert {e.job_id for e in seen.events} == {job_id}
        if how == "dispose":
            seen.subscription.dispose()
        else:
            context.stopped.set()
        wait_for(lambda: not source_threads(), timeout=10, what=f"the source's threads ending on {how}")
        count = len(seen.events)
        assert not seen.ended.is_set() and len(seen.events) == count


# -- redirects and cut streams, with a server of the test's own ----------------------------

class Redirect(tornado.web.RequestHandler):
    def get(self, path):
        self.redirect(self.settings["target"] + path, status=307)


class CutOutput(tornado.web.RequestHandler):
    """The first connection gets events 0 and 1 then is cut; the next gets 2 and the end."""

    async def get(self):
        calls = self.settings["calls"]
        calls.append(self.request.path)
        self.set_header("Content-Type", "text/event-stream")
        self.write(": connected\n\n")
        if len(calls) == 1:
            self.write('data: {"n": 0}\n\ndata: {"n": 1}\n\n')
            await self.flush()
            self.request.connection.stream.close()  # cut: no end event, no final chunk
            return
        self.write('data: {"n": 2}\n\n: keepalive\n\nevent: end\ndata: {"reason": "done"}\n\n')
        self.finish()


def serve(app):
    """Start ``app`` on a loopback port in a thread of its own; (url, stop)."""
    started, box = threading.Event(), {}

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        box.update(loop=loop, server=server, url=f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
        started.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert started.wait(10)

    def stop():
        box["loop"].call_soon_threadsafe(box["server"].stop)
        box["loop"].call_soon_threadsafe(box["loop"].stop)

    return box["url"], stop


def test_follows_a_redirect_reconnects_after_a_cut_and_asks_for_the_master_each_time():
    calls, asked = [], []
    leader_url, stop_leader = serve(tornado.web.Application([(r"/api/v1/jobs/a-1/output", CutOutput)],
                                                            calls=calls))
    standby_url, stop_standby = serve(tornado.web.Application([(r"(/.*)", Redirect)], target=leader_url))
    try:
        def master():
            asked.append(1)
            return standby_url

        seen = Collector(job_output_source(Context(job_id="chain-1"), job_id="a-1", master=master,
                                           retry_delays_s=(0.05,)))
        assert seen.ended.wait(30) and seen.completed.is_set(), seen.error
        assert seen.events == [UpstreamEvent("a-1", {"n": n}) for n in range(3)]
        assert calls == ["/api/v1/jobs/a-1/output"] * 2 and len(asked) == 2
    finally:
        stop_standby()
        stop_leader()
