"""A stand-in for ``webapi.gateway.Gateway`` so the REST handlers can be tested without actors.

It has the Gateway's surface (``ask(message, to=...)``, ``watch``, ``config``, ``master``)
and behaves as the Gateway does at its edge: it runs the message's ``validate()`` first
(a ValidationError is a 400 ApiError), turns a ``Rejected`` answer into an ApiError with
its status and a ``Done`` answer into its body.  What it answers is canned per message
type, and every message it was asked is recorded with its target, so a test can check
which typed message a request became.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.messages import Done, Rejected
from mantis.model.codec import ValidationError
from webapi.gateway import ApiError

# What masterInfo and masterConfigs read from the config.
CONFIG = {"master": {"host": "127.0.0.1", "api_port": 8100, "actor_system_base": "simpleSystemBase",
                     "admin_port": 19500}}


@dataclass
class FakeMaster:
    """The Gateway's ``master``: masterInfo shows its actors' addresses (None here: no TCP base)."""

    manager: Any = "manager"
    scheduler: Any = "scheduler"
    base: str = "simpleSystemBase"


@dataclass
class Asked:
    """One recorded ``ask``: the typed message and the actor it was addressed to."""

    message: Any
    to: str


@dataclass
class FakeGateway:
    """Answers every ``ask`` from ``answers`` (message type -> Done, Rejected or an exception
    to raise), ``Done({})`` by default, and records it in ``asked``."""

    answers: dict = field(default_factory=dict)
    asked: list = field(default_factory=list)
    config: dict = field(default_factory=lambda: CONFIG)
    master: FakeMaster = field(default_factory=FakeMaster)
    unavailable: bool = False  # every ask is the 503 the real Gateway raises when no actor answers

    async def ask(self, message: Any, to: str = "manager", timeout: float = 10.0) -> Any:
        # Validation happens before anything is sent, exactly as in the real Gateway, so a
        # malformed request is refused without being recorded.
        validate = getattr(message, "validate", None)
        if validate is not None:
            try:
                validate()
            except ValidationError as exc:
                raise ApiError(400, str(exc)) from None
        self.asked.append(Asked(message, to))
        if self.unavailable:
            raise ApiError(503, f"the master did not answer {type(message).__name__} within {timeout:.0f}s")
        answer = self.answers.get(type(message), Done({}))
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, Rejected):
            raise ApiError(answer.status, answer.reason)
        return answer.body

    def watch(self, message, callback):
        """No pushes from a fake: None tells the stream handlers to poll, as under simpleSystemBase."""
        return None

    def close(self) -> None:
        """Nothing to release."""
