"""Who may call the control plane: the bearer token, one-time login links and the browser
sessions they open, Host and Origin checks, and the limit on failed attempts."""

from __future__ import annotations

__all__ = ("Gatekeeper", "Reason", "Refusal", "SESSION_COOKIE")

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gate_runner.components.sites import LOOPBACK_NAMES, SitePolicy, host_of

SESSION_COOKIE = "gate_session"
SESSION_TTL = 12 * 3600.0
LOGIN_TTL = 120.0
# Wrong credentials allowed per client address in FAIL_WINDOW seconds. Past that, every
# attempt from the address is refused (the right token too: otherwise guessing goes on at
# full speed) until the window has room again. Only credentials presented and wrong count:
# a request with none (what a cross-site <img> sends) or one refused for its Host or
# Origin never does, so a web page cannot lock the owner out, and attempts refused during
# a lockout do not count either, so it cannot be renewed forever.
MAX_FAILURES = 10
FAIL_WINDOW = 60.0
_MAX_TRACKED = 4096  # client addresses remembered; the oldest go first
# Spent login codes (used or expired) are remembered this long, so that the page can say
# which it was and what to do; only their digests, and at most _MAX_SPENT of them.
SPENT_TTL = 24 * 3600.0
_MAX_SPENT = 1024
_NO_CREDENTIAL = (
    "missing or wrong bearer token (it is in dataDir/control.token; "
    "a browser logs in with the link from `gate ui`)"
)
_SESSION_OVER = "this browser's session has ended; log in again with the link from `gate ui`"


# Why a request was refused, for the pages that explain it: a foreign Host, a cross-site
# request, a lockout, a missing or wrong credential, a session cookie that names no live
# session (ended, expired, or from before a restart), and a login code never issued here,
# used already or expired.
Reason = Literal[
    "host",
    "cross-site",
    "locked",
    "credential",
    "session",
    "login-unknown",
    "login-used",
    "login-expired",
]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    headers: Mapping[str, str]
    reason: Reason


class Gatekeeper:
    """One per control server instance. Every HTTP and WebSocket request passes ``check``."""

    def __init__(
        self,
        *,
        token: str,
        bound_host: str,
        port: int,
        tls: bool,
        extra_origins: Iterable[str] = (),
        sessions: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``sessions`` (session id -> expiry on ``clock``) outlives this gatekeeper when the
        control component passes its own: a restart of the control server (a new address,
        TLS or origins) then does not log the browser out, and its socket reconnects."""
        self._token = f"Bearer {token}".encode()
        self._clock = clock
        self._scheme = "https" if tls else "http"
        self._port = port
        extra = [o.rstrip("/").lower() for o in extra_origins]
        names = set(LOOPBACK_NAMES)
        if bound_host not in ("0.0.0.0", "::"):
            names.add(bound_host.lower())
        # The control address is always an origin of its own; the extra origins are names
        # a reverse proxy or a DNS name puts in front of it, so they are hosts too.
        own = [f"{self._scheme}://{self._netloc(n)}" for n in names]
        self._sites = SitePolicy(
            bound_host=bound_host,
            hosts=[host_of(o.split("://", 1)[1]) for o in extra],
            origins=[*own, *extra],
        )
        # Login codes are kept as their SHA-256 digests: a lookup's timing then tells a
        # guesser nothing about how close a guess came, and a memory dump holds no live code.
        self._logins: dict[bytes, float] = {}  # code digest -> expiry
        self._spent: dict[bytes, tuple[Reason, float]] = {}  # code digest -> why, forget at
        self._sessions = {} if sessions is None else sessions  # session id -> expiry
        self._failures: dict[str, deque[float]] = {}

    def _netloc(self, host: str) -> str:
        return f"[{host}]:{self._port}" if ":" in host else f"{host}:{self._port}"

    @property
    def base_url(self) -> str:
        sites = self._sites
        host = "127.0.0.1" if sites.wildcard or "127.0.0.1" in sites.names else "localhost"
        return f"{self._scheme}://{self._netloc(host)}"

    # -- checks -----------------------------------------------------------------------

    def host_allowed(self, host_header: str) -> bool:
        """A DNS-rebinding page reaches us under its own name; the Host header gives it
        away. On a wildcard bind any literal address of ours is fine, names are not."""
        return self._sites.host_allowed(host_header)

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin: not a browser (the CLI, curl). A browser's must be ours exactly."""
        return origin is None or self._sites.origin_allowed(origin)

    def check_site(
        self, *, host: str, origin: str | None, fetch_site: str | None = None
    ) -> Refusal | None:
        """The DNS-rebinding and cross-site checks alone (the login link has no token)."""
        if not self.host_allowed(host):
            message = f"Host {host[:100]!r} is not this node's control address"
            return Refusal(421, message, {}, "host")
        if self._sites.cross_site_refused(origin, fetch_site):
            where = f"Origin {origin[:100]!r}" if origin is not None else "another site"
            return Refusal(403, f"cross-site request from {where} refused", {}, "cross-site")
        return None

    def check(
        self,
        *,
        client: str,
        host: str,
        origin: str | None,
        authorization: str | None,
        cookie_session: str | None,
        navigation: bool = False,
        fetch_site: str | None = None,
    ) -> Refusal | None:
        """None when the request may go on; otherwise what to answer. ``navigation`` is a
        GET of a page: a browser sends no Origin then, and SameSite=Strict has kept the
        cookie off any cross-site request already."""
        refusal = self.check_site(host=host, origin=origin, fetch_site=fetch_site)
        if refusal is not None:
            return refusal
        wait = self._locked_for(client)
        if wait is not None:
            return self._too_many(wait)
        if authorization is not None:
            if hmac.compare_digest(authorization.encode(), self._token):
                return None
            return self.failed(client)
        if cookie_session is not None:
            if not self._session_valid(cookie_session):
                return self.failed(client, "session")
            # A cookie rides along on any request the browser makes: only a same-origin
            # page (Origin present and ours, checked above) may use it.
            if origin is not None or navigation:
                return None
        return Refusal(401, _NO_CREDENTIAL, {"WWW-Authenticate": "Bearer"}, "credential")

    def failed(self, client: str, reason: Reason = "credential") -> Refusal:
        """Count a wrong credential and say what to fix."""
        self._count_failure(client)
        message = _SESSION_OVER if reason == "session" else _NO_CREDENTIAL
        return Refusal(401, message, {"WWW-Authenticate": "Bearer"}, reason)

    def _too_many(self, wait: float) -> Refusal:
        seconds = max(1, int(wait + 0.999))
        return Refusal(
            429,
            f"too many failed attempts from this address; try again in {seconds}s",
            {"Retry-After": str(seconds)},
            "locked",
        )

    def _locked_for(self, client: str) -> float | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - FAIL_WINDOW:
            failures.popleft()
        if len(failures) < MAX_FAILURES:
            return None
        return failures[0] + FAIL_WINDOW - now

    def _count_failure(self, client: str) -> None:
        failures = self._failures.pop(client, None) or deque(maxlen=MAX_FAILURES)
        failures.append(self._clock())
        self._failures[client] = failures  # re-inserted: the dict's order is least recent first
        while len(self._failures) > _MAX_TRACKED:
            del self._failures[next(iter(self._failures))]

    # -- login links and sessions -----------------------------------------------------

    def new_login(self, ttl: float = LOGIN_TTL) -> tuple[str, float]:
        """A one-time code for /login and its expiry as a wall-clock time."""
        self._expire()
        code = secrets.token_urlsafe(32)
        self._logins[_digest(code)] = self._clock() + ttl
        return code, time.time() + ttl

    def redeem(self, code: str, *, client: str) -> str | Refusal:
        """Trade a login code for a new session id; a code works once. A refused code
        counts as a failed attempt, whether it was never issued, used or expired."""
        wait = self._locked_for(client)
        if wait is not None:
            return self._too_many(wait)
        self._expire()
        digest = _digest(code)
        expiry = self._logins.pop(digest, None)
        if expiry is None:
            self._count_failure(client)
            spent = self._spent.get(digest)
            reason: Reason = spent[0] if spent is not None else "login-unknown"
            return Refusal(401, _LOGIN_REFUSED[reason], {}, reason)
        self._spend(digest, "login-used")
        session = secrets.token_urlsafe(32)
        self._sessions[session] = self._clock() + SESSION_TTL
        return session

    def end_session(self, session: str) -> None:
        self._sessions.pop(session, None)

    def _session_valid(self, session: str) -> bool:
        expiry = self._sessions.get(session)
        return expiry is not None and expiry > self._clock()

    def _spend(self, digest: bytes, reason: Reason) -> None:
        self._spent[digest] = (reason, self._clock() + SPENT_TTL)
        while len(self._spent) > _MAX_SPENT:  # insertion order: the oldest go first
            del self._spent[next(iter(self._spent))]

    def _expire(self) -> None:
        now = self._clock()
        for digest in [d for d, expiry in self._logins.items() if expiry <= now]:
            del self._logins[digest]
            self._spend(digest, "login-expired")
        for session in [s for s, expiry in self._sessions.items() if expiry <= now]:
            del self._sessions[session]
        for spent in [d for d, (_, forget) in self._spent.items() if forget <= now]:
            del self._spent[spent]

    @property
    def secure_cookies(self) -> bool:
        return self._scheme == "https"


_LOGIN_REFUSED: dict[Reason, str] = {
    "login-unknown": "this login link is not valid here; run `gate ui` again for a new one",
    "login-used": "this login link was used already; run `gate ui` again for a new one",
    "login-expired": "this login link has expired; run `gate ui` again for a new one",
}


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()
