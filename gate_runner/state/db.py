"""state.db: the node's SQLite store, its schema steps, and the spec history kept in it."""

from __future__ import annotations

__all__ = ("HistoryEntry", "StateDB", "StateError")

import importlib.resources
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from gate_runner.errors import GateError

T = TypeVar("T")


class StateError(GateError):
    """Raised when state.db cannot be opened or migrated (unwritable dataDir, newer schema)."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    generation: int
    applied_at: str
    origin: str
    source: str
    digest: str
    document: str  # canonical YAML

    def to_dict(self) -> dict[str, object]:
        return {
            "generation": self.generation,
            "appliedAt": self.applied_at,
            "origin": self.origin,
            "source": self.source,
            "digest": self.digest,
        }


def _schema_steps() -> list[tuple[int, str]]:
    folder = importlib.resources.files("gate_runner.migrations.state")
    steps = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            steps.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(steps)


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StateDB:
    """One SQLite connection, used from worker threads one call at a time.

    SQLite calls block, so async callers go through ``anyio.to_thread``; the lock keeps
    the single connection to one thread at a time. Commits never checkpoint the WAL (that
    fsyncs); ``checkpoint()`` does, in a worker thread, so that a short write may run on the
    event loop thread (``run_here``) without waiting on the disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            # Create the file 0600 before SQLite opens it: the -wal and -shm files it makes
            # copy the database's mode, and they hold recent rows too.
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.Error as e:
            raise StateError(
                f"cannot open {path}: {e}",
                hint="check that dataDir exists and is writable by this user",
            ) from e
        except OSError as e:
            raise StateError(
                f"cannot create {path}: {e.strerror}",
                hint="check that dataDir exists and is writable by this user",
            ) from e
        path.chmod(0o600)

    def _migrate(self) -> None:
        (current,) = self._conn.execute("PRAGMA user_version").fetchone()
        steps = _schema_steps()
        latest = steps[-1][0] if steps else 0
        if current > latest:
            raise StateError(
                f"{self.path} has schema version {current}, newer than this gate ({latest})",
                hint="upgrade gate, or point dataDir at a fresh directory",
            )
        for number, sql in steps:
            if number <= current:
                continue
            # executescript commits on its own; the version bump rides in the same script.
            self._conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread while holding the connection lock.

        The hook for modules that keep their own SQL (the request log): ``fn`` owns the
        connection for its duration and manages its own transaction, since the connection
        is in autocommit mode (``BEGIN``/``COMMIT`` explicitly for multi-statement writes).
        It is not cancellable once started: the thread always finishes what it began.
        """

        def locked() -> T:
            with self._lock:
                return fn(self._conn)

        return await anyio.to_thread.run_sync(locked)

    def run_here(self, fn: Callable[[sqlite3.Connection], None]) -> bool:
        """Run ``fn(conn)`` in the calling thread if no other call holds the connection;
        False, and ``fn`` not run, if one does. For short writes from the event loop thread,
        where handing the work to a thread costs the loop more (in GIL handoffs between the
        two) than the write itself. The WAL is written without fsync: see ``checkpoint``.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            fn(self._conn)
        finally:
            self._lock.release()
        return True

    async def checkpoint(self) -> None:
        """Move the WAL's pages into the database file, in a worker thread. Commits leave
        that to this call, so the WAL grows until it runs: the request log calls it on
        its pruning ticks (every 15 s), and closing the connection does it too."""

        def passive(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

        await self.run(passive)

    # -- spec history -------------------------------------------------------------------

    def _last_entry(self) -> HistoryEntry | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT generation, applied_at, origin, source, digest, document"
                " FROM spec_history ORDER BY generation DESC LIMIT 1"
            ).fetchone()
        return HistoryEntry(*row) if row else None

    def _append(self, *, origin: str, source: str, digest: str, document: str) -> HistoryEntry:
        with self._lock:
            (last,) = self._conn.execute("SELECT MAX(generation) FROM spec_history").fetchone()
            entry = HistoryEntry((last or 0) + 1, now_rfc3339(), origin, source, digest, document)
            self._conn.execute(
                "INSERT INTO spec_history VALUES (?, ?, ?, ?, ?, ?)",
                (entry.generation, entry.applied_at, origin, source, digest, document),
            )
        return entry

    def _entries(self, limit: int) -> list[HistoryEntry]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT generation, applied_at, origin, source, digest, document"
                " FROM spec_history ORDER BY generation DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [HistoryEntry(*row) for row in rows]

    def _entry(self, generation: int) -> HistoryEntry | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT generation, applied_at, origin, source, digest, document"
                " FROM spec_history WHERE generation = ?",
                (generation,),
            ).fetchone()
        return HistoryEntry(*row) if row else None

    async def last_entry(self) -> HistoryEntry | None:
        return await anyio.to_thread.run_sync(self._last_entry)

    async def append(self, *, origin: str, source: str, digest: str, document: str) -> HistoryEntry:
        return await anyio.to_thread.run_sync(
            lambda: self._append(origin=origin, source=source, digest=digest, document=document)
        )

    async def entries(self, limit: int = 50) -> list[HistoryEntry]:
        return await anyio.to_thread.run_sync(self._entries, limit)

    async def entry(self, generation: int) -> HistoryEntry | None:
        return await anyio.to_thread.run_sync(self._entry, generation)
