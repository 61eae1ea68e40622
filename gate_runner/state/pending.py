"""Pending peer requests in state.db: peers not in the spec that dialed in or said hello,
kept (capped, expiring) until someone approves or ignores them."""

from __future__ import annotations

__all__ = ("MAX_AGE", "MAX_ROWS", "WRITE_INTERVAL", "PendingPeers", "PendingRequest")

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gate_runner.state.db import StateDB

log = logging.getLogger(__name__)

# A stranger's request is worth a week's attention; after that it is more likely a stale
# dial than a friend waiting. A hundred rows fill no screen a person would read through,
# and bound what a flood of fresh peer ids (each one costs a Noise handshake) can write.
MAX_AGE: Final = 7 * 24 * 3600.0
MAX_ROWS: Final = 100
# A linked peer says hello every 5 s: one write a minute per stranger keeps the table
# current without a write per hello or per request.
WRITE_INTERVAL: Final = 60.0
# Strangers remembered in memory for the write interval; past that the oldest are forgotten
# (each then costs one more write, never more memory).
_MAX_REMEMBERED: Final = 4096
_MAX_NAME: Final = 128
_MAX_ADDRESS: Final = 128
_COLUMNS: Final = "peer_id, name, address, first_seen, last_seen, count"


@dataclass(frozen=True, slots=True)
class PendingRequest:
    peer_id: str
    name: str | None  # what it calls itself, if its hello said
    address: str | None  # host:port its connection came from, if known
    first_seen: float  # unix seconds
    last_seen: float
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "peerId": self.peer_id,
            "name": self.name,
            "address": self.address,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
            "count": self.count,
        }


class PendingPeers:
    """The pending requests of one node. One instance per node, shared by the p2p side
    (``record``) and the control plane (``list``, ``remove``, ``ignore``): it remembers when
    it last wrote each peer, so that a chatty stranger costs one write a minute.

    The caller decides who is a stranger; this store records whoever it is handed.
    """

    def __init__(
        self,
        db: StateDB,
        *,
        max_rows: int = MAX_ROWS,
        max_age: float = MAX_AGE,
        write_interval: float = WRITE_INTERVAL,
        clock: Callable[[], float] = time.time,
        on_record: Callable[[str, str | None], None] | None = None,
    ) -> None:
        """``on_record(peer_id, name)`` is told of each sighting written (the node publishes
        it as a peer.pending event, so that a page showing the requests needs no polling)."""
        self._db = db
        self._on_record = on_record
        self._max_rows = max_rows
        self._max_age = max_age
        self._write_interval = write_interval
        self._clock = clock
        # peer id -> (time of its last write, sightings since, whether a name was written):
        # insertion-ordered, oldest first.
        self._recent: dict[str, tuple[float, int, bool]] = {}

    async def record(
        self, *, peer_id: str, name: str | None = None, address: str | None = None
    ) -> bool:
        """Note a sighting of ``peer_id``; True when it was written to state.db now. Written
        at most once per write interval per peer: the sightings between are counted in
        memory and added with the next write. A failed write is logged, never raised: a
        full disk must not break the p2p handler that called this."""
        now = self._clock()
        last = self._recent.get(peer_id)
        # The first sighting is often a request, which names nobody; the hello that follows
        # within the minute gives the name, and a name not yet written is worth the write.
        news = name is not None and not (last is not None and last[2])
        if last is not None and now - last[0] < self._write_interval and not news:
            self._recent[peer_id] = (last[0], last[1] + 1, last[2])
            return False
        count = 1 + (last[1] if last is not None else 0)
        named = name is not None or (last is not None and last[2])
        self._recent.pop(peer_id, None)
        self._recent[peer_id] = (now, 0, named)
        while len(self._recent) > _MAX_REMEMBERED:
            del self._recent[next(iter(self._recent))]
        row = (
            peer_id,
            _clip(name, _MAX_NAME),
            _clip(address, _MAX_ADDRESS),
            now,
            now,
            count,
        )

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN")
            try:
                # Expired rows go first: a stranger back after MAX_AGE is a new request
                # (counted afresh, no longer ignored), not the old row updated.
                self._expire(conn, now)
                conn.execute(
                    f"INSERT INTO pending_peers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(peer_id) DO UPDATE SET"
                    " name = COALESCE(excluded.name, name),"
                    " address = COALESCE(excluded.address, address),"
                    " last_seen = excluded.last_seen,"
                    " count = count + excluded.count",
                    row,
                )
                self._cap(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    # The error that got us here is the one to report.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

        try:
            await self._db.run(upsert)
        except sqlite3.Error as e:
            log.warning(
                "could not record the pending request of peer %s: %s",
                peer_id,
                e,
                extra={"peer": peer_id},
            )
            return False
        if self._on_record is not None:
            self._on_record(peer_id, name)
        return True

    async def list(self) -> list[PendingRequest]:
        """The pending requests not ignored and not expired, most recently seen first."""
        since = self._clock() - self._max_age

        def query(conn: sqlite3.Connection) -> list[PendingRequest]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM pending_peers WHERE ignored = 0 AND last_seen >= ?"
                " ORDER BY last_seen DESC LIMIT ?",
                (since, self._max_rows),
            ).fetchall()
            return [PendingRequest(*row) for row in rows]

        return await self._db.run(query)

    async def get(self, peer_id: str) -> PendingRequest | None:
        """The pending request of ``peer_id``, if it is listed (not ignored, not expired)."""
        since = self._clock() - self._max_age

        def query(conn: sqlite3.Connection) -> PendingRequest | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM pending_peers"
                " WHERE peer_id = ? AND ignored = 0 AND last_seen >= ?",
                (peer_id, since),
            ).fetchone()
            return PendingRequest(*row) if row else None

        return await self._db.run(query)

    async def remove(self, peer_id: str) -> bool:
        """Forget ``peer_id``'s request (approved, or added to the spec another way);
        whether there was one."""
        self._recent.pop(peer_id, None)

        def delete(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute("DELETE FROM pending_peers WHERE peer_id = ?", (peer_id,)).rowcount > 0
            )

        return await self._db.run(delete)

    async def ignore(self, peer_id: str) -> bool:
        """Hide ``peer_id``'s request; whether a listed one was there. The row stays (and
        expires as the others do) so that the peer's next hellos and redials do not bring
        it back: a stranger that keeps dialing stays ignored until it stops for MAX_AGE."""
        since = self._clock() - self._max_age

        def hide(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE pending_peers SET ignored = 1"
                " WHERE peer_id = ? AND ignored = 0 AND last_seen >= ?",
                (peer_id, since),
            )
            return cursor.rowcount > 0

        return await self._db.run(hide)

    async def prune(self) -> int:
        """Drop expired rows and all but the newest ``max_rows``; how many went. ``record``
        prunes too, so this is for a periodic tick or a start."""
        now = self._clock()

        def run(conn: sqlite3.Connection) -> int:
            return self._prune(conn, now)

        return await self._db.run(run)

    def _prune(self, conn: sqlite3.Connection, now: float) -> int:
        return self._expire(conn, now) + self._cap(conn)

    def _expire(self, conn: sqlite3.Connection, now: float) -> int:
        cursor = conn.execute(
            "DELETE FROM pending_peers WHERE last_seen < ?", (now - self._max_age,)
        )
        return cursor.rowcount

    def _cap(self, conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            "DELETE FROM pending_peers WHERE peer_id NOT IN"
            " (SELECT peer_id FROM pending_peers ORDER BY last_seen DESC LIMIT ?)",
            (self._max_rows,),
        )
        return cursor.rowcount


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = "".join(c for c in text[:limit] if c.isprintable())
    return text or None
