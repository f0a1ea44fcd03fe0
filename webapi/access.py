"""Who may call what: bearer tokens with roles, checked before every API handler runs.

Roles are ordered, each including the ones before it:

- ``read``: every GET that is not an admin view;
- ``operate``: every mutation (create, update, delete clusters; submit, kill, scale,
  resubmit jobs; ``mantis deploy``);
- ``admin``: agents' actions, the admin endpoints and the master's config.

``RULES`` is the role table, as data: the first rule whose methods and path match a
request names the role it needs (None: anyone).  A policy is *enforced* when tokens are
configured or when the API binds beyond loopback (``access.loopback_hosts``); bound
beyond loopback without any token, the master refuses to start.  While enforced, a call
whose rule needs a role must carry ``Authorization: Bearer <token>``: no token or an
unknown one is 401, a token whose role is too low is 403, both with a JSON message.  A
presented token is always checked, even on open routes.  Tokens never appear in logs or
in the config view: logs name a token by its role and a short fingerprint.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from mantis.config import Config, ConfigError
from webapi.gateway import ApiError

log = logging.getLogger("mantis.access")

ROLES = ("read", "operate", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
READS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Rule:
    """Requests with one of ``methods`` whose path fully matches ``pattern`` need ``role``."""

    methods: frozenset[str]
    pattern: str
    role: str | None

    def matches(self, method: str, path: str) -> bool:
        """True when this rule applies to ``method`` on ``path``."""
        return method in self.methods and re.fullmatch(self.pattern, path) is not None


RULES: tuple[Rule, ...] = (
    Rule(READS, r"/api/v1/admin(/.*)?", "admin"),
    Rule(READS, r"/api/v1/masterConfigs/?", "admin"),
    Rule(WRITES, r"/api/v1/agents/[^/]+/actions/[^/]+/?", "admin"),
    Rule(WRITES, r"/api/v1/admin(/.*)?", "admin"),
    Rule(READS, r".*", None),
    Rule(WRITES, r".*", "operate"),
)


class AccessConfigError(ConfigError):
    """Access settings the master cannot start with (bad role, unreadable tokens file,
    or an API beyond loopback without a token)."""


def fingerprint(token: str) -> str:
    """A short, non-reversible name for ``token``, for logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


def required_role(method: str, path: str, rules: tuple[Rule, ...] = RULES) -> str | None:
    """The role ``method`` on ``path`` needs (None: anyone), by the first matching rule."""
    for rule in rules:
        if rule.matches(method, path):
            return rule.role
    return "admin"  # a method no rule names: only the most trusted


def read_tokens_file(path: str) -> dict[str, str]:
    """Tokens from a file of ``ROLE TOKEN`` lines (``#`` comments and blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessConfigError(f"cannot read access.tokens_file {path}: {exc.strerror}") from None
    tokens = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise AccessConfigError(f"{path}:{number}: a line must be 'ROLE TOKEN'")
        role, token = parts
        tokens[token] = role
    return tokens


@dataclass(frozen=True)
class AccessPolicy:
    """The tokens (secret -> role) and whether calls are checked; see the module doc."""

    tokens: dict[str, str] = field(default_factory=dict)
    enforced: bool = False

    @classmethod
    def from_config(cls, config: Config) -> AccessPolicy:
        """The policy of ``config``'s ``[access]`` for an API bound at ``master.host``;
        AccessConfigError when it cannot be served safely."""
        a = config.access
        tokens = dict(a.tokens)
        if a.tokens_file:
            tokens.update(read_tokens_file(a.tokens_file))
        for token, role in tokens.items():
            if role not in _RANK:
                raise AccessConfigError(f"token {fingerprint(token)} has role {role!r}; "
                                        f"roles are {', '.join(ROLES)}")
            if len(token) < 8:
                raise AccessConfigError(f"a token of role {role} is shorter than 8 characters")
        host = config.master.host
        loopback = {h.strip() for h in a.loopback_hosts.split(",") if h.strip()}
        beyond = host not in loopback
        if beyond and not tokens:
            raise AccessConfigError(
                f"the API binds {host}, beyond loopback ({', '.join(sorted(loopback))}), and no access token is "
                "configured: set access.tokens or access.tokens_file")
        return cls(tokens=tokens, enforced=beyond or bool(tokens))

    def role_of(self, token: str) -> str | None:
        """The role of ``token``, or None when it is not one of ours (compared in constant time)."""
        found = None
        for known, role in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = role
        return found

    def authorize(self, method: str, path: str, authorization: str | None) -> str | None:
        """The caller's role (None when anonymous), or ApiError 401/403 when the call is not allowed."""
        if not self.enforced:
            return None
        needed = required_role(method, path)
        token = _bearer(authorization)
        if token is None:
            if needed is None:
                return None
            raise ApiError(401, f"{method} {path} needs a bearer token with role {needed} "
                                "(Authorization: Bearer <token>; the CLI sends $MANTIS_TOKEN)")
        role = self.role_of(token)
        if role is None:
            log.warning("refused %s %s: unknown token %s", method, path, fingerprint(token))
            raise ApiError(401, "the bearer token is not valid")
        if needed is not None and _RANK[role] < _RANK[needed]:
            log.warning("refused %s %s: token %s has role %s, needs %s", method, path, fingerprint(token),
                        role, needed)
            raise ApiError(403, f"{method} {path} needs role {needed}; this token has role {role}")
        return role


OPEN = AccessPolicy()


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "the Authorization header must be 'Bearer <token>'")
    return value.strip()


def check_request(handler) -> None:
    """Authorize the request of a Tornado ``handler`` under its application's ``access``
    policy (open when none is set); raises ApiError 401/403."""
    policy = handler.application.settings.get("access", OPEN)
    request = handler.request
    policy.authorize(request.method, request.path, request.headers.get("Authorization"))


def public_config(config: dict) -> dict:
    """The config's JSON view with every secret replaced, for masterConfigs."""
    access = dict(config.get("access", {}))
    if "tokens" in access:
        access["tokens"] = {fingerprint(t): role for t, role in access["tokens"].items()}
    return {**config, "access": access}
