"""state.db: the node's SQLite store, its schema steps, the spec history kept in it, and
setting aside a state.db found unusable at start."""

from __future__ import annotations

__all__ = ("HistoryEntry", "SetAside", "StateDB", "StateError")

import contextlib
import errno
import importlib.resources
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import anyio.to_thread

from gate_runner.errors import GateError
from gate_runner.files import fsync_dir

T = TypeVar("T")

log = logging.getLogger(__name__)

# SQLite's verdicts on a file that is damaged, as opposed to one it cannot reach (permissions,
# I/O errors): only these make the node set state.db aside and start a fresh one.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
_SIDECARS = ("-wal", "-shm")
_SET_ASIDE = ".corrupt-"  # state.db.corrupt-20260101T120000Z, with its -wal and -shm


class StateError(GateError):
    """Raised when state.db cannot be opened or migrated (unwritable dataDir, full disk,
    newer schema). A damaged state.db is not an error: it is set aside (``SetAside``)."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """A state.db that was unusable at start (empty, not a database, failing quick_check),
    moved aside with its -wal and -shm files so that the node could start a fresh one."""

    path: Path  # where it went: <dataDir>/state.db.corrupt-<UTC time>
    reason: str  # what was wrong with it

    @property
    def moved_at(self) -> str:
        """The UTC time in the file's name, as RFC 3339."""
        stamp = self.path.name.rpartition(_SET_ASIDE)[2][:16]
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
        except ValueError:
            return stamp
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def describe(self) -> str:
        return (
            f"state.db {self.reason}, so the spec history restarted at generation 1 (and the"
            f" request log empty) at {self.moved_at}; the old file is {self.path}. gate.yaml"
            " and the key were not touched. Remove that file to clear this notice"
        )


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
            moved = _ensure_usable(path)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.Error as e:
            raise StateError(f"cannot open {path}: {e}", hint=_open_hint(path, e)) from e
        except OSError as e:
            raise StateError(f"cannot create {path}: {e.strerror}", hint=_open_hint(path, e)) from e
        path.chmod(0o600)
        # Every set-aside state.db still in dataDir, newest first: the notice stays, across
        # restarts, until the user removes the file. A detached `gate up` opens state.db
        # twice (once in the foreground to fail early), so the node that runs may not be
        # the process that moved the file.
        self.set_aside: tuple[SetAside, ...] = _find_set_aside(path, moved)
        for old in self.set_aside:
            if old is not moved:
                log.warning("%s", old.describe(), extra={"setAside": str(old.path)})

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


# -- opening: a usable file, or a fresh one in place of the damaged one --------------------


def _primary(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _open_hint(path: Path, error: sqlite3.Error | OSError) -> str:
    full = (
        _primary(error) == sqlite3.SQLITE_FULL
        if isinstance(error, sqlite3.Error)
        else error.errno in (errno.ENOSPC, errno.EDQUOT)
    )
    if full:
        return f"no space left on device: free space on the disk that holds {path.parent}"
    return "check that dataDir exists and is writable by this user"


def _ensure_usable(path: Path) -> SetAside | None:
    """Leave a database at ``path`` that passes quick_check: create it when missing; when it is
    empty or damaged, move it aside (returned) and create a fresh one in its place.

    A state.db of 0 bytes is never one of ours (``_create`` renames a file into place only
    once SQLite has written its header), so an empty one was emptied behind our back (a
    truncation, a filesystem that lost it in a crash): its history is lost, and we say so.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _set_aside_orphans(path)
        _create(path)
        return None
    found = {s for s in _SIDECARS if Path(f"{path}{s}").exists()}
    reason = "was empty (0 bytes)" if size == 0 else _check(path)
    if reason is None:
        return None
    moved = _move_aside(path, reason, sidecars=found)
    log.error(
        "starting a fresh state.db: %s", moved.describe(), extra={"setAside": str(moved.path)}
    )
    _create(path)
    return moved


def _check(path: Path) -> str | None:
    """None when ``path`` passes ``PRAGMA quick_check``, else what is wrong with it.

    Read-only: a read-write connection would checkpoint the WAL into the damaged file as
    it closed, and the file is to be set aside as it was found.
    """
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        if _primary(e) in _DAMAGED:
            return f"was corrupt ({e})"
        raise
    if rows == [("ok",)]:
        return None
    # Each row may hold several lines; the first is a "*** in database main ***" banner.
    problems = [
        line
        for (row,) in rows
        for line in str(row).splitlines()
        if line and not line.startswith("***")
    ]
    more = f", and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    return f"was corrupt (quick_check: {problems[0] if problems else rows[0][0]}{more})"


def _move_aside(path: Path, reason: str, *, sidecars: set[str]) -> SetAside:
    """Rename state.db and its -wal and -shm to state.db.corrupt-<time>[-wal|-shm]: the
    names SQLite itself pairs, so the set-aside file opens with its WAL for a recovery.
    Only the ``sidecars`` that were there before _check: the (empty) ones its read-only
    connection made are removed."""
    target = _unused_name(path, _SET_ASIDE)
    # The database first: a crash before its WAL follows leaves an orphaned WAL, which the
    # next start sets aside too (_set_aside_orphans), never a WAL paired with a fresh file.
    os.rename(path, target)
    for suffix in _SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            if suffix in sidecars:
                os.rename(f"{path}{suffix}", f"{target}{suffix}")
            else:
                os.unlink(f"{path}{suffix}")
    fsync_dir(path.parent)
    return SetAside(target, reason)


def _unused_name(path: Path, kind: str) -> Path:
    """``path`` + ``kind`` + the UTC time, with a counter if a file (or its -wal or -shm)
    already has that name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}{kind}{stamp}")
    n = 0
    while any(Path(f"{target}{s}").exists() for s in ("", *_SIDECARS)):
        n += 1
        target = path.with_name(f"{path.name}{kind}{stamp}-{n}")
    return target


def _set_aside_orphans(path: Path) -> None:
    """A -wal or -shm left without its state.db (deleted by hand) belongs to the old file:
    SQLite would replay that WAL into the fresh one, so it goes aside too."""
    orphans = [s for s in _SIDECARS if Path(f"{path}{s}").exists()]
    if not orphans:
        return
    target = _unused_name(path, ".orphan-")
    for suffix in orphans:
        os.rename(f"{path}{suffix}", f"{target}{suffix}")
    log.warning(
        "%s was missing but its %s file(s) were not: moved them to %s*, and starting a "
        "fresh state.db (the spec history restarts at generation 1)",
        path,
        " and ".join(orphans),
        target,
    )


def _create(path: Path) -> None:
    """Make an empty WAL-mode database at ``path``: written and fsynced under a temporary
    name (mode 0600, which SQLite copies to the -wal and -shm files, and they hold recent
    rows too), then renamed into place, so that ``path`` is never a file of 0 bytes."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    os.close(fd)
    try:
        conn = sqlite3.connect(name)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # writes the header page to the file
        finally:
            conn.close()
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(name, path)
    except BaseException:
        for suffix in ("", *_SIDECARS):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{name}{suffix}")
        raise
    fsync_dir(path.parent)


def _find_set_aside(path: Path, moved: SetAside | None) -> tuple[SetAside, ...]:
    found: list[SetAside] = []
    for entry in path.parent.glob(f"{path.name}{_SET_ASIDE}*"):
        if entry.name.endswith(_SIDECARS):
            continue
        if moved is not None and entry == moved.path:
            found.append(moved)
            continue
        try:
            empty = entry.stat().st_size == 0
        except OSError:
            continue
        found.append(SetAside(entry, "was empty (0 bytes)" if empty else "was corrupt"))
    return tuple(sorted(found, key=lambda s: s.path.name, reverse=True))
