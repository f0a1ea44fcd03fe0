"""A standby master's API: masterInfo answered locally, everything else sent to the leader."""
import asyncio
import json

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from webapi.standby import RoleRouter, make_standby_app


class Hello(tornado.web.RequestHandler):
    def get(self):
        self.finish({"hello": "leader"})


def served(app, check):
    """Serve ``app`` behind a RoleRouter on loopback and run ``await check(url, router)``."""
    async def main():
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        router = RoleRouter(app)
        server = tornado.httpserver.HTTPServer(router)
        server.add_sockets(sockets)
        try:
            await check(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", router)
        finally:
            server.stop()
    asyncio.run(main())


async def fetch(url, method="GET", body=None):
    client = tornado.httpclient.AsyncHTTPClient()
    reply = await client.fetch(url, method=method, body=body, raise_error=False, follow_redirects=False)
    return reply.code, reply.headers, json.loads(reply.body or b"null")


def test_standby_redirects_calls_to_the_leader_with_the_same_path_and_says_who_leads():
    async def check(url, _):
        code, headers, body = await fetch(f"{url}/api/v1/jobs/x-1?user=a", "DELETE")
        assert code == 307 and headers["Location"] == "http://127.0.0.1:9999/api/v1/jobs/x-1?user=a"
        assert body["leader"] == "http://127.0.0.1:9999"
        code, _, body = await fetch(f"{url}/api/v1/masterInfo")
        assert code == 200 and body == {"role": "Standby", "leader": False, "leaderUrl": "http://127.0.0.1:9999"}

    served(make_standby_app(lambda: {"role": "Standby"}, lambda: "http://127.0.0.1:9999"), check)


def test_standby_answers_metrics_itself_with_leader_status_zero_and_its_terms():
    from prometheus_client.parser import text_string_to_metric_families

    async def check(url, _):
        reply = await tornado.httpclient.AsyncHTTPClient().fetch(f"{url}/metrics", raise_error=False,
                                                                 follow_redirects=False)
        assert reply.code == 200
        samples = {s.name: s.value for f in text_string_to_metric_families(reply.body.decode()) for s in f.samples}
        assert samples["mantis_master_leader"] == 0.0 and samples["mantis_master_leader_terms_total"] == 1.0

    terms = [[1.0, 2.0]]  # led once, then stepped down
    served(make_standby_app(lambda: {"role": "Standby", "terms": terms}, lambda: "http://127.0.0.1:9999"), check)


def test_standby_without_a_known_leader_answers_503_json():
    async def check(url, _):
        code, _, body = await fetch(f"{url}/api/v1/jobClusters", "POST", body="{}")
        assert code == 503 and "no leader" in body["error"]

    served(make_standby_app(lambda: {}, lambda: None), check)


def test_role_router_switches_new_requests_to_the_leading_app():
    async def check(url, router):
        assert (await fetch(f"{url}/hello"))[0] == 503
        router.switch(tornado.web.Application([(r"/hello", Hello)]))
        code, _, body = await fetch(f"{url}/hello")
        assert code == 200 and body == {"hello": "leader"}

    served(make_standby_app(lambda: {}, lambda: None), check)
