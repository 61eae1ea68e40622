"""Pending peer requests against a real state.db in tmp_path: recording, the write interval,
the cap, expiry, remove and ignore, and the schema step that adds the table."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gate_runner.state import StateDB
from gate_runner.state.pending import PendingPeers

pytestmark = pytest.mark.anyio

SCHEMA = Path(__file__).parents[2] / "migrations" / "state"
PEER = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[StateDB]:
    d = StateDB(tmp_path / "state.db")
    yield d
    d.close()


@pytest.fixture
def pending(db: StateDB, clock: Clock) -> PendingPeers:
    return PendingPeers(db, clock=clock)


def _rows(db: StateDB) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db.path)
    try:
        return conn.execute(
            "SELECT peer_id, name, address, first_seen, last_seen, count, ignored"
            " FROM pending_peers ORDER BY peer_id"
        ).fetchall()
    finally:
        conn.close()


async def test_a_sighting_is_recorded_and_listed(pending: PendingPeers, clock: Clock) -> None:
    assert await pending.record(peer_id=PEER, name="bob", address="203.0.113.9:50123")
    (request,) = await pending.list()
    assert request.to_dict() == {
        "peerId": PEER,
        "name": "bob",
        "address": "203.0.113.9:50123",
        "firstSeen": clock.now,
        "lastSeen": clock.now,
        "count": 1,
    }
    assert await pending.get(PEER) == request


async def test_a_chatty_peer_is_written_once_a_minute_and_counted(
    pending: PendingPeers, db: StateDB, clock: Clock
) -> None:
    """A linked stranger says hello every 5 s: one write a minute, every hello counted."""
    first = clock.now
    assert await pending.record(peer_id=PEER)
    for _ in range(11):
        clock.now += 5
        assert not await pending.record(peer_id=PEER)
    assert _rows(db)[0][3:6] == (first, first, 1)  # nothing written meanwhile
    clock.now = first + 60
    assert await pending.record(peer_id=PEER)
    (request,) = await pending.list()
    assert (request.first_seen, request.last_seen, request.count) == (first, first + 60, 13)


async def test_a_name_given_within_the_minute_is_written_at_once(
    pending: PendingPeers, clock: Clock
) -> None:
    """A stranger's first sighting is usually its request (no name); its hello comes a moment
    later with the name, which must not wait a minute behind the throttle."""
    assert await pending.record(peer_id=PEER)
    clock.now += 1
    assert await pending.record(peer_id=PEER, name="bob")
    (request,) = await pending.list()
    assert request.name == "bob" and request.count == 2
    clock.now += 5
    assert not await pending.record(peer_id=PEER, name="bob")  # nothing new: throttled


async def test_a_later_sighting_keeps_what_an_earlier_one_said(
    pending: PendingPeers, clock: Clock
) -> None:
    await pending.record(peer_id=PEER, name="bob", address="203.0.113.9:50123")
    clock.now += 60
    await pending.record(peer_id=PEER)  # a request: no name, no address
    (request,) = await pending.list()
    assert (request.name, request.address, request.count) == ("bob", "203.0.113.9:50123", 2)
    clock.now += 60
    await pending.record(peer_id=PEER, name="bobby")
    (request,) = await pending.list()
    assert request.name == "bobby"


async def test_the_table_is_capped_to_the_most_recently_seen(db: StateDB, clock: Clock) -> None:
    pending = PendingPeers(db, clock=clock, max_rows=3)
    for i in range(5):
        clock.now += 1
        await pending.record(peer_id=f"peer-{i}")
    assert [r.peer_id for r in await pending.list()] == ["peer-4", "peer-3", "peer-2"]
    assert len(_rows(db)) == 3


async def test_requests_expire(pending: PendingPeers, db: StateDB, clock: Clock) -> None:
    await pending.record(peer_id="old")
    clock.now += 6 * 86400
    await pending.record(peer_id="recent")
    clock.now += 86400 + 1
    assert [r.peer_id for r in await pending.list()] == ["recent"]
    assert await pending.get("old") is None
    assert await pending.prune() == 1
    assert [row[0] for row in _rows(db)] == ["recent"]


async def test_remove_forgets_the_request_and_its_write_interval(
    pending: PendingPeers, clock: Clock
) -> None:
    await pending.record(peer_id=PEER)
    assert await pending.remove(PEER)
    assert await pending.list() == []
    assert not await pending.remove(PEER)
    # Removed (approved, then removed from the spec again): the next sighting is news.
    assert await pending.record(peer_id=PEER)
    (request,) = await pending.list()
    assert request.count == 1


async def test_an_ignored_peer_stays_hidden_while_it_keeps_dialing(
    pending: PendingPeers, db: StateDB, clock: Clock
) -> None:
    await pending.record(peer_id=PEER, name="bob")
    assert await pending.ignore(PEER)
    assert await pending.list() == [] and await pending.get(PEER) is None
    assert not await pending.ignore(PEER)  # not listed any more
    clock.now += 3600
    await pending.record(peer_id=PEER, name="bob")
    assert await pending.list() == []
    assert _rows(db)[0][6] == 1  # still there, still ignored
    # Silent for the expiry age: the tombstone goes, and a new dial asks again.
    clock.now += 7 * 86400 + 1
    await pending.record(peer_id=PEER)
    assert [r.peer_id for r in await pending.list()] == [PEER]


async def test_ignoring_an_unknown_peer_changes_nothing(pending: PendingPeers) -> None:
    assert not await pending.ignore(PEER)
    assert await pending.list() == []


async def test_what_a_peer_says_is_clipped_to_printable_text(pending: PendingPeers) -> None:
    await pending.record(peer_id=PEER, name="bob\x1b[31m" + "x" * 500, address="\x00")
    (request,) = await pending.list()
    assert request.name is not None and request.name.startswith("bob[31m")
    assert len(request.name) <= 128
    assert request.address is None


async def test_a_failed_write_is_logged_not_raised(
    db: StateDB, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    pending = PendingPeers(db, clock=clock)
    db.close()
    with caplog.at_level(logging.WARNING, logger="gate_runner.state.pending"):
        assert not await pending.record(peer_id=PEER)
    assert f"could not record the pending request of peer {PEER}" in caplog.text


def test_an_older_state_db_gains_the_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for step in sorted(SCHEMA.glob("000[123]_*.sql")):
        conn.executescript(step.read_text())
    conn.execute("INSERT INTO spec_history VALUES (1, 't', 'startup', 'f', 'd', 'doc')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    db = StateDB(path)
    db.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (4,)
        assert conn.execute("SELECT COUNT(*) FROM spec_history").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM pending_peers").fetchone() == (0,)
    finally:
        conn.close()


async def test_each_write_is_told_and_nothing_else(db: StateDB, clock: Clock) -> None:
    """The node publishes what on_record hears as peer.pending: once per write, not per
    throttled sighting."""
    told: list[tuple[str, str | None]] = []
    pending = PendingPeers(db, clock=clock, on_record=lambda peer, name: told.append((peer, name)))
    await pending.record(peer_id=PEER)
    clock.now += 1
    await pending.record(peer_id=PEER, name="bob")
    clock.now += 5
    await pending.record(peer_id=PEER, name="bob")  # throttled: nothing to tell
    assert told == [(PEER, None), (PEER, "bob")]
