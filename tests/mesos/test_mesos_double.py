"""The Mesos double against the v1 scheduler HTTP API documentation (not our client):
RecordIO framing, the Mesos-Stream-Id header, 202 answers, filters, reconciliation."""
from __future__ import annotations

import http.client
import json

from mantis.tooling.mesos_double import MesosDouble
from tests.mesos.conftest import MesosDoubleProcess, agent_spec

SUBSCRIBE = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "probe",
                                                                   "failover_timeout": 30}}}


def read_record(resp) -> dict:
    """One RecordIO record: '<length>\\n' then exactly that many bytes of JSON."""
    digits = b""
    while not digits.endswith(b"\n"):
        digits += resp.read(1)
    return json.loads(resp.read(int(digits)))


def post(port, body, stream_id=None, content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": content_type}
    if stream_id:
        headers["Mesos-Stream-Id"] = stream_id
    conn.request("POST", "/api/v1/scheduler", json.dumps(body) if not isinstance(body, bytes) else body, headers)
    resp = conn.getresponse()
    return resp, conn


def test_subscribe_streams_recordio_events_with_a_stream_id_and_calls_are_answered_202(tmp_path):
    d = MesosDoubleProcess(tmp_path, [agent_spec("a1", zone="z1")], heartbeat_s=0.5).start()
    try:
        resp, conn = post(d.port, SUBSCRIBE)
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        stream_id = resp.getheader("Mesos-Stream-Id")
        assert stream_id
        subscribed = read_record(resp)
        assert subscribed["type"] == "SUBSCRIBED" and subscribed["subscribed"]["heartbeat_interval_seconds"] > 0
        fid = subscribed["subscribed"]["framework_id"]
        assert read_record(resp) == {"type": "HEARTBEAT"}
        offers = next(e for e in iter(lambda: read_record(resp), None) if e["type"] == "OFFERS")["offers"]["offers"]
        (offer,) = offers
        assert offer["agent_id"]["value"] == "a1"
        assert {r["name"] for r in offer["resources"]} == {"cpus", "mem", "disk", "ports"}
        assert offer["attributes"] == [{"name": "zone", "type": "TEXT", "text": {"value": "z1"}}]
        decline = {"type": "DECLINE", "framework_id": fid,
                   "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 60}}}
        # Every call but SUBSCRIBE needs the stream's id.
        assert post(d.port, decline)[0].status == 400
        assert post(d.port, decline, "not-the-stream")[0].status == 400
        assert post(d.port, b"{", stream_id)[0].status == 400
        assert post(d.port, decline, stream_id, content_type="text/plain")[0].status == 415
        assert post(d.port, decline, stream_id)[0].status == 202
        for kind in ("REVIVE", "SUPPRESS"):
            assert post(d.port, {"type": kind, "framework_id": fid}, stream_id)[0].status == 202
        reconcile = {"type": "RECONCILE", "framework_id": fid,
                     "reconcile": {"tasks": [{"task_id": {"value": "nope"}, "agent_id": {"value": "a1"}}]}}
        assert post(d.port, reconcile, stream_id)[0].status == 202
        update = next(e for e in iter(lambda: read_record(resp), None) if e["type"] == "UPDATE")
        assert update["update"]["status"]["task_id"]["value"] == "nope"
        assert update["update"]["status"]["state"] == "TASK_UNKNOWN"
        assert "uuid" not in update["update"]["status"]  # reconciliation answers are not acknowledged
        assert post(d.port, {"type": "TEARDOWN", "framework_id": fid}, stream_id)[0].status == 202
        conn.close()
        assert d.state()["frameworks"] == {}
    finally:
        d.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def subscribed_double(tmp_path, clock):
    d = MesosDouble(tmp_path, clock=clock)
    sent: list = []
    d.send = lambda fid, event: sent.append(event)
    d.add_agent("a1", cpus=2, mem=1024, ports=[(40000, 40009)])
    fw, _ = d.subscribe(SUBSCRIBE)
    return d, fw, sent


def accept(d, fw, offer, task):
    launch = {"type": "LAUNCH", "launch": {"task_infos": [task]}}
    d.call({"type": "ACCEPT", "framework_id": {"value": fw.framework_id},
            "accept": {"offer_ids": [offer["id"]], "operations": [launch]}}, fw.stream_id)


def offers_of(sent):
    return [o for e in sent if e["type"] == "OFFERS" for o in e["offers"]["offers"]]


def test_a_declined_agent_is_not_offered_again_within_its_filter_and_is_after_it(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.allocate()
    (offer,) = offers_of(sent)
    d.call({"type": "DECLINE", "framework_id": {"value": fw.framework_id},
            "decline": {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 30}}}, fw.stream_id)
    sent.clear()
    for _ in range(29):
        clock.now += 1
        d.allocate()
    assert offers_of(sent) == []
    clock.now += 1.5
    d.allocate()
    assert len(offers_of(sent)) == 1


def test_revive_clears_filters_and_suppress_stops_offers(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    fid = {"value": fw.framework_id}
    d.call({"type": "SUPPRESS", "framework_id": fid}, fw.stream_id)
    d.allocate()
    assert offers_of(sent) == []
    d.call({"type": "REVIVE", "framework_id": fid}, fw.stream_id)
    d.allocate()
    (offer,) = offers_of(sent)
    d.call({"type": "DECLINE", "framework_id": fid, "decline": {"offer_ids": [offer["id"]]}}, fw.stream_id)
    sent.clear()
    d.allocate()
    assert offers_of(sent) == []  # the default filter (5 s)
    d.call({"type": "REVIVE", "framework_id": fid}, fw.stream_id)
    d.allocate()
    assert len(offers_of(sent)) == 1


def test_a_lost_agent_rescinds_its_offers_and_reports_failure(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.allocate()
    (offer,) = offers_of(sent)
    d.lose_agent("a1")
    kinds = [e["type"] for e in sent]
    assert kinds[-2:] == ["RESCIND", "FAILURE"]
    assert sent[-2]["rescind"]["offer_id"] == offer["id"]
    assert sent[-1]["failure"]["agent_id"] == {"value": "a1"}


def test_accepting_a_rescinded_offer_drops_the_task(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.allocate()
    (offer,) = offers_of(sent)
    d.set_offerable("a1", False)
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
            "command": {"value": "true"}}
    accept(d, fw, offer, task)
    update = sent[-1]["update"]["status"]
    assert update["state"] == "TASK_DROPPED" and update["task_id"] == {"value": "t1"} and "uuid" in update
    assert d.tasks == {}


def test_a_framework_that_resubscribes_within_its_failover_timeout_keeps_its_tasks(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.allocate()
    (offer,) = offers_of(sent)
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"value": "sleep 30"}}
    accept(d, fw, offer, task)
    try:
        assert d.tasks["t1"].state == "TASK_RUNNING"
        old_stream = fw.stream_id
        d.disconnected(fw.framework_id, old_stream)
        clock.now += 20
        d.tick()
        again = dict(SUBSCRIBE, framework_id={"value": fw.framework_id})
        again["subscribe"] = {"framework_info": dict(SUBSCRIBE["subscribe"]["framework_info"],
                                                     id={"value": fw.framework_id})}
        fw2, first = d.subscribe(again)
        assert fw2.framework_id == fw.framework_id and fw2.stream_id != old_stream
        assert d.tasks["t1"].state == "TASK_RUNNING"
        # Past the timeout with nobody subscribed, the tasks are killed.
        d.disconnected(fw2.framework_id, fw2.stream_id)
        clock.now += 31
        d.tick()
        assert d.frameworks == {} and d.tasks["t1"].kill_requested
    finally:
        d.shutdown()


def test_kill_sends_term_then_kill_after_the_grace_period(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.kill_grace_s = 3.0
    d.allocate()
    (offer,) = offers_of(sent)
    task = {"name": "t", "task_id": {"value": "stubborn"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 40001, "end": 40002}]}}],
            "command": {"value": "trap '' TERM; echo $PORT0 $PORT1 > ports; sleep 60 & wait; sleep 60"}}
    fid = {"value": fw.framework_id}
    d.call({"type": "ACCEPT", "framework_id": fid, "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [task]}}]}}, fw.stream_id)
    try:
        t = d.tasks["stubborn"]
        assert t.state == "TASK_RUNNING"
        sandbox = tmp_path / "a1" / "stubborn"
        import time
        for _ in range(100):  # the shell writes its ports file at once
            if (sandbox / "ports").exists() and (sandbox / "ports").read_text().strip():
                break
            time.sleep(0.05)
        assert (sandbox / "ports").read_text().split() == ["40001", "40002"]
        d.call({"type": "KILL", "framework_id": fid, "kill": {"task_id": {"value": "stubborn"},
                                                              "agent_id": {"value": "a1"}}}, fw.stream_id)
        time.sleep(0.5)
        d.tick()
        assert t.proc.poll() is None and t.state == "TASK_RUNNING"  # TERM is ignored by the command
        clock.now += 3.1
        d.tick()  # past the grace: SIGKILL
        t.proc.wait(5)
        d.tick()
        assert t.state == "TASK_KILLED"
        assert sent[-1]["update"]["status"]["state"] == "TASK_KILLED"
    finally:
        d.shutdown()


def test_a_status_update_is_sent_again_until_acknowledged(tmp_path):
    clock = Clock()
    d, fw, sent = subscribed_double(tmp_path, clock)
    d.update_retry_s = 10.0
    d.allocate()
    (offer,) = offers_of(sent)
    task = {"name": "t", "task_id": {"value": "t1"}, "agent_id": {"value": "elsewhere"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}], "command": {"value": "true"}}
    accept(d, fw, offer, task)  # the wrong agent: TASK_ERROR at once
    (error,) = [e["update"]["status"] for e in sent if e["type"] == "UPDATE"]
    assert error["state"] == "TASK_ERROR"
    sent.clear()
    clock.now += 9
    d.tick()
    assert [e for e in sent if e["type"] == "UPDATE"] == []
    clock.now += 1
    d.tick()
    assert [e["update"]["status"]["uuid"] for e in sent if e["type"] == "UPDATE"] == [error["uuid"]]
    d.call({"type": "ACKNOWLEDGE", "framework_id": {"value": fw.framework_id},
            "acknowledge": {"agent_id": {"value": "elsewhere"}, "task_id": {"value": "t1"}, "uuid": error["uuid"]}},
           fw.stream_id)
    sent.clear()
    clock.now += 30
    d.tick()
    assert [e for e in sent if e["type"] == "UPDATE"] == []
