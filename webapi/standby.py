"""What a master serves while it does not lead, and the switch between that and the API.

A standby answers ``/api/v1/masterInfo`` and ``/metrics`` itself (so operators,
Prometheus and tests can see its role and who leads) and every other request with a ``307`` to the same path on the
leader, with a JSON body naming the leader; a client that does not follow redirects
still learns where to go.  While nobody leads (an election in progress) the answer is a
JSON ``503``: retry shortly.  ``RoleRouter`` is the HTTP server's delegate and hands
each new request to the application of the current role, so one listening socket
serves both roles and switches without a restart.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import tornado.httputil
import tornado.web

from mantis.model import codec
from webapi import metrics


class RoleRouter(tornado.httputil.HTTPServerConnectionDelegate):
    """Routes each new request to ``app``; ``switch`` changes it (call on the IOLoop)."""

    def __init__(self, app: tornado.web.Application):
        self.app = app

    def switch(self, app: tornado.web.Application) -> None:
        """Requests from now on go to ``app``; requests already running finish where they are."""
        self.app = app

    def start_request(self, server_conn, request_conn):
        return self.app.start_request(server_conn, request_conn)

    def on_close(self, server_conn) -> None:
        self.app.on_close(server_conn)


class StandbyHandler(tornado.web.RequestHandler):
    """Every path of a standby master: masterInfo answered here, the rest redirected."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

    def initialize(self, info: Callable[[], dict], leader_url: Callable[[], Awaitable[str | None]]):
        self.info, self.leader_url = info, leader_url

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")

    async def _answer(self, *args):
        if self.request.path == "/metrics":
            self.set_header("Content-Type", metrics.CONTENT_TYPE)
            self.finish(metrics.standby_metrics(self.info()))
            return
        leader = await self.leader_url()
        if self.request.path.rstrip("/") == "/api/v1/masterInfo":
            self.finish(codec.dumps(dict(self.info(), leader=False, leaderUrl=leader)))
            return
        if not leader:
            self.set_status(503)
            self.finish(codec.dumps({"error": "this master is a standby and no leader is elected yet; "
                                              "retry shortly", "status": 503}))
            return
        self.set_status(307)
        self.set_header("Location", leader.rstrip("/") + self.request.uri)
        self.finish(codec.dumps({"error": f"this master is a standby; the leader is {leader}",
                                 "status": 307, "leader": leader}))

    get = head = post = put = delete = patch = options = _answer


def make_standby_app(info: Callable[[], dict], find_leader_url: Callable[[], str | None]) -> tornado.web.Application:
    """The standby's application; ``find_leader_url`` may block (it runs on a thread)."""

    async def leader_url() -> str | None:
        return await asyncio.get_running_loop().run_in_executor(None, find_leader_url)

    return tornado.web.Application([(r".*", StandbyHandler, {"info": info, "leader_url": leader_url})],
                                   started_at=time.time())
