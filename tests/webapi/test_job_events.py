"""GET /api/v1/jobs/{jobId}/events against a fake gateway: the typed message and the envelope."""
from __future__ import annotations

from actors.messages import Done, GetJobEvents, Rejected
from tests.webapi.test_handlers import HandlerTest

EVENTS = [{"at": 1700000001.0, "type": "JobSubmitted", "message": "job submitted"},
          {"at": 1700000002.0, "type": "StageScaled", "message": "stage 2 scaled up from 1 to 3 workers by JobMaster"},
          {"at": 1700000003.5, "type": "WorkerReplaced", "message": "worker 4 Failed"}]
# As the API answers them: times in epoch milliseconds, as every time it shows.
LISTED = [{**e, "at": int(e["at"] * 1000)} for e in EVENTS]


class JobEvents(HandlerTest):

    def test_events_are_asked_of_the_job_and_come_in_a_list_envelope(self):
        self.gateway.answers[GetJobEvents] = Done(EVENTS)
        status, body = self.call("GET", "/api/v1/jobs/synth-1/events")
        assert status == 200 and body == {"list": LISTED, "prev": None, "next": None, "total": 3}
        assert self.sent() == (GetJobEvents("synth-1"), "manager")

    def test_events_filter_by_type_and_keep_the_newest_limit(self):
        self.gateway.answers[GetJobEvents] = Done(EVENTS)
        body = self.call("GET", "/api/v1/jobs/synth-1/events?type=StageScaled&type=WorkerReplaced&limit=1")[1]
        assert body["list"] == LISTED[2:] and body["total"] == 1

    def test_bad_input_and_unknown_jobs_are_json_errors(self):
        status, body = self.call("GET", "/api/v1/jobs/synth-1/events?limit=many")
        self.assert_error(400, body, "limit")
        status, body = self.call("GET", "/api/v1/jobs/no_number/events")
        assert status == 400
        self.gateway.answers[GetJobEvents] = Rejected(404, "job synth-9 does not exist")
        status, body = self.call("GET", "/api/v1/jobs/synth-9/events")
        self.assert_error(404, body, "does not exist")
