"""The gatekeeper's rules on their own: Host and Origin matching, sessions, lockouts."""

from __future__ import annotations

import pytest

from gate_runner.components.control.auth import FAIL_WINDOW, MAX_FAILURES, Gatekeeper


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def keeper(host: str = "127.0.0.1", *, tls: bool = False, clock: Clock | None = None) -> Gatekeeper:
    return Gatekeeper(
        token="t0ken",
        bound_host=host,
        port=8145,
        tls=tls,
        extra_origins=["https://gate.example.net/"],
        clock=clock or Clock(),
    )


def ask(k: Gatekeeper, **kw: object) -> int | None:
    args: dict[str, object] = {
        "client": "10.0.0.1",
        "host": "127.0.0.1:8145",
        "origin": None,
        "authorization": "Bearer t0ken",
        "cookie_session": None,
    }
    args.update(kw)
    refusal = k.check(**args)  # type: ignore[arg-type]
    return None if refusal is None else refusal.status


@pytest.mark.parametrize(
    ("bound", "host", "ok"),
    [
        ("127.0.0.1", "127.0.0.1:8145", True),
        ("127.0.0.1", "localhost:8145", True),
        ("127.0.0.1", "[::1]:8145", True),
        ("127.0.0.1", "127.0.0.2", True),
        ("127.0.0.1", "evil.example:8145", False),
        ("127.0.0.1", "192.168.1.5:8145", False),
        ("192.168.1.5", "192.168.1.5:8145", True),
        ("0.0.0.0", "203.0.113.9:8145", True),
        ("0.0.0.0", "evil.example", False),
        ("0.0.0.0", "gate.example.net", True),
        ("::", "[2001:db8::1]:8145", True),
        ("127.0.0.1", "LocalHost.:8145", True),
        ("127.0.0.1", "evil.example.:8145", False),
        ("127.0.0.1", "[::ffff:127.0.0.1]:8145", True),
        ("127.0.0.1", "", False),
    ],
)
def test_host_rules(bound: str, host: str, ok: bool) -> None:
    assert keeper(bound).host_allowed(host) is ok


@pytest.mark.parametrize(
    ("origin", "tls", "ok"),
    [
        (None, False, True),
        ("http://127.0.0.1:8145", False, True),
        ("http://localhost:8145", False, True),
        ("http://127.0.0.1:8145/", False, True),
        ("https://127.0.0.1:8145", False, False),
        ("https://127.0.0.1:8145", True, True),
        ("http://127.0.0.1:9999", False, False),
        ("https://gate.example.net", False, True),
        ("null", False, False),
        ("http://evil.example", False, False),
    ],
)
def test_origin_rules(origin: str | None, tls: bool, ok: bool) -> None:
    assert keeper(tls=tls).origin_allowed(origin) is ok


def test_lockout_ends_when_the_window_passes() -> None:
    clock = Clock()
    k = keeper(clock=clock)
    for _ in range(MAX_FAILURES):
        assert ask(k, authorization="Bearer nope") == 401
    assert ask(k) == 429
    assert ask(k, client="10.0.0.2") is None  # another address is not locked out
    clock.now += FAIL_WINDOW + 0.1
    assert ask(k) is None


def test_sessions_need_a_same_origin_caller_except_for_page_loads() -> None:
    clock = Clock()
    k = keeper(clock=clock)
    code, _ = k.new_login(60)
    session = k.redeem(code, client="10.0.0.1")
    assert isinstance(session, str)
    assert not isinstance(k.redeem(code, client="10.0.0.1"), str)  # once only
    origin = "http://127.0.0.1:8145"
    assert ask(k, authorization=None, cookie_session=session, origin=origin) is None
    assert ask(k, authorization=None, cookie_session=session) == 401
    assert ask(k, authorization=None, cookie_session=session, navigation=True) is None
    clock.now += 13 * 3600
    assert ask(k, authorization=None, cookie_session=session, origin=origin) == 401


def test_a_session_outlives_its_gatekeeper_when_the_store_is_shared() -> None:
    """The control component keeps the sessions across restarts of its server: a new
    gatekeeper on the same store still knows the browser, and a logout ends it for both."""
    clock = Clock()
    sessions: dict[str, float] = {}

    def make() -> Gatekeeper:
        return Gatekeeper(
            token="t0ken",
            bound_host="127.0.0.1",
            port=8145,
            tls=False,
            sessions=sessions,
            clock=clock,
        )

    first = make()
    code, _ = first.new_login(60)
    session = first.redeem(code, client="10.0.0.1")
    assert isinstance(session, str)
    second = make()  # the restarted server
    origin = "http://127.0.0.1:8145"
    assert ask(second, authorization=None, cookie_session=session, origin=origin) is None
    second.end_session(session)
    assert ask(first, authorization=None, cookie_session=session, origin=origin) == 401
    # Without a shared store (one gatekeeper each), a session is its server's alone.
    alone = keeper(clock=clock)
    code, _ = alone.new_login(60)
    own = alone.redeem(code, client="10.0.0.1")
    assert ask(keeper(clock=clock), authorization=None, cookie_session=own, origin=origin) == 401


def test_an_expired_login_code_is_refused() -> None:
    clock = Clock()
    k = keeper(clock=clock)
    code, _ = k.new_login(10)
    clock.now += 11
    refusal = k.redeem(code, client="10.0.0.1")
    assert not isinstance(refusal, str) and refusal.status == 401


def test_only_wrong_credentials_count_towards_the_lockout() -> None:
    k = keeper()
    for _ in range(3 * MAX_FAILURES):
        assert ask(k, authorization=None) == 401  # no credential at all
        assert ask(k, authorization="Bearer nope", origin="http://evil.example") == 403
        assert ask(k, authorization="Bearer nope", host="evil.example") == 421
    assert ask(k) is None
    for _ in range(MAX_FAILURES):
        assert ask(k, authorization=None, cookie_session="forged") == 401
    assert ask(k) == 429
