"""The request log: one record per API request, kept in memory, written to state.db in batches."""

from __future__ import annotations

__all__ = ("RequestLog", "RequestRecord", "new_request_id")

import contextlib
import logging
import random
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from functools import cache, partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from gate_runner.state.db import StateDB

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, started_at, method, path, model, source, target_node, provider, status,"
    " latency_ms, ttft_ms, prompt_tokens, completion_tokens, attempts, stream, error"
)
_ROW = f"({', '.join('?' * 16)})"
# Rows per INSERT statement. One multi-row statement is one sqlite3_step, so the writer
# thread gives up and retakes the GIL once per chunk rather than once per row: per-row
# handoffs with the event loop thread cost the API more than the inserts themselves.
# 16 columns x 256 rows stays under SQLite's 32,766 bound variables.
_CHUNK = 256
_RECENT = 1000  # records kept in memory for recent() and live views
# After a batch written on the event loop thread took longer than RequestLog's slow_write
# (a disk under writeback pressure), the writes go to a worker thread for this long.
_SLOW_FOR = 30.0


@cache
def _insert(rows: int) -> str:
    return f"INSERT INTO requests ({_COLUMNS}) VALUES {', '.join([_ROW] * rows)}"


def _advice(error: sqlite3.Error, path: Path) -> str:
    """What to do about a failed write, by SQLite's primary result code."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL:
        return (
            f"no space left on device: free space on the disk that holds {path.parent};"
            " writing resumes by itself"
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return (
            "state.db is damaged: restart the node (`gate down`, then `gate up`), which"
            " sets it aside and starts a fresh one"
        )
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return f"make {path} and {path.parent} writable by the node's user"
    if primary == sqlite3.SQLITE_IOERR:
        return f"the disk that holds {path.parent} reported an I/O error: check it (dmesg)"
    return "each batch tries again; restart the node if this persists"


def _end_transaction(conn: sqlite3.Connection) -> None:
    """Roll back what a failed statement or COMMIT left open. SQLite may already have rolled
    the transaction back itself (a full disk), and a failed COMMIT leaves it open, where every
    later BEGIN would fail even once the disk has room again."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the error that got us here is the one to report
            conn.execute("ROLLBACK")


def new_request_id(prefix: str = "req_") -> str:
    """A fresh request id: ``prefix`` and 24 hex digits, the milliseconds since the epoch
    (48 bits) then 48 random ones, as UUIDv7 lays them out. Ids sort by time, so the id
    index of state.db grows at its end: random ids cost three times as much to insert.
    An id names a request; it grants nothing, so the non-cryptographic generator does."""
    return f"{prefix}{int(time.time() * 1000):012x}{random.getrandbits(48):012x}"


class RequestRecord(NamedTuple):
    """One finished API request, as the API component saw it. A named tuple: it is built
    once per request on the hot path, and its fields are the row, in _COLUMNS' order."""

    id: str
    started_at: float  # unix time, seconds
    method: str
    path: str
    model: str | None
    source: str  # "127.0.0.1:54321" or "peer:<name>"
    target_node: str | None  # None: this node
    provider: str | None
    status: int
    latency_ms: float
    ttft_ms: float | None  # time to the first byte of the response body
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    stream: bool
    error: str | None  # short message for non-2xx (or a mid-stream error)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "startedAt": self.started_at,
            "method": self.method,
            "path": self.path,
            "model": self.model,
            "source": self.source,
            "targetNode": self.target_node,
            "provider": self.provider,
            "status": self.status,
            "latencyMs": self.latency_ms,
            "ttftMs": self.ttft_ms,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "attempts": self.attempts,
            "stream": self.stream,
            "error": self.error,
        }

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> RequestRecord:
        # Column order is _COLUMNS (the field order); sqlite hands `stream` back as 0/1.
        values = list(row)
        values[14] = bool(values[14])
        return cls(*values)


def _matches(
    rec: RequestRecord, before: float | None, model: str | None, status: int | None
) -> bool:
    return (
        (before is None or rec.started_at < before)
        and (model is None or rec.model == model)
        and (status is None or rec.status == status)
    )


class RequestLog:
    """Owns the request log: the hot-path buffer, the batch writer and the queries.

    ``record()`` is synchronous and O(1) so the API can call it per request from the event
    loop thread; ``run()`` is the writer task that moves the buffer into state.db.
    """

    def __init__(
        self,
        db: StateDB,
        *,
        retention: int = 100_000,
        max_age: float = 7 * 86400,
        flush_interval: float = 0.25,
        batch: int = 256,
        max_buffer: int = 10_000,
        prune_every: int = 60,
        close_timeout: float = 5.0,
        slow_write: float = 0.02,
        on_record: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        if batch < 1 or max_buffer < 1 or retention < 0 or prune_every < 1:
            raise ValueError("batch, max_buffer and prune_every must be >= 1, retention >= 0")
        self._db = db
        self._retention = retention
        self._max_age = max_age
        self._flush_interval = flush_interval
        self._batch = batch
        self._prune_every = prune_every  # writer ticks between prunes (60 x 0.25 s = 15 s)
        self._close_timeout = close_timeout
        # A deque with maxlen drops its oldest item on overflow; record() counts that.
        # The bound keeps memory flat when the disk is slower than the traffic.
        self._pending: deque[RequestRecord] = deque(maxlen=max_buffer)
        # Batches taken from _pending and being written, by id(batch): list() reads them.
        self._inflight: dict[int, list[RequestRecord]] = {}
        self._recent: deque[RequestRecord] = deque(maxlen=_RECENT)
        self._wake: anyio.Event | None = None  # created in run(): events need a running loop
        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._flushes = 0
        self._slow_write = slow_write
        self._thread_until = 0.0  # while time.monotonic() is below, write from a thread
        self._on_record = on_record  # the node's request.completed event
        # Set by a failed write and cleared by the next good one (on whichever thread wrote);
        # flush() wakes write_error_changed() waiters from the event loop thread.
        self._write_error: str | None = None
        self._failed_since = 0  # _failed when the current run of failures began
        self._announced: str | None = None
        self._error_changed: anyio.Event | None = None

    # -- hot path -------------------------------------------------------------------------

    def record(self, rec: RequestRecord) -> None:
        """Buffer ``rec`` for the writer. Never blocks; call it from the event loop thread."""
        pending = self._pending
        if len(pending) == pending.maxlen:
            self._dropped += 1  # append() below pushes the oldest out
        pending.append(rec)
        self._recent.append(rec)
        if self._on_record is not None:
            self._on_record(rec)
        if len(pending) >= self._batch:
            wake = self._wake
            if wake is not None and not wake.is_set():
                wake.set()

    def recent(self, n: int = 100) -> list[RequestRecord]:
        """The last ``n`` recorded requests (at most 1000), newest first, from memory."""
        return list(islice(reversed(self._recent), max(n, 0)))

    @property
    def write_error(self) -> str | None:
        """Why records are not reaching state.db, and what to do, until a write succeeds."""
        return self._write_error

    async def write_error_changed(self) -> None:
        """Return once ``write_error`` changes (writes start failing, or work again)."""
        if self._error_changed is None:
            self._error_changed = anyio.Event()
        await self._error_changed.wait()

    def _announce(self) -> None:
        if self._write_error == self._announced:
            return
        self._announced = self._write_error
        if self._error_changed is not None:
            self._error_changed.set()
            self._error_changed = None

    @property
    def stats(self) -> dict[str, int]:
        return {
            "buffered": len(self._pending) + sum(map(len, self._inflight.values())),
            "written": self._written,
            "dropped": self._dropped,  # lost to the buffer bound
            "failed": self._failed,  # lost to a failed write (disk full, database closed)
            "flushes": self._flushes,  # write transactions committed
        }

    # -- writer ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Write buffered records until cancelled, then write what is left and return.

        Each transaction holds at most ``batch`` records, so a backlog never holds the
        connection lock (and readers) for long.
        """
        self._wake = anyio.Event()
        task_status.started()
        try:
            ticks = 0
            while True:
                with anyio.move_on_after(self._flush_interval):
                    await self._wake.wait()
                self._wake = anyio.Event()
                await self.flush()
                ticks += 1
                if ticks % self._prune_every == 0:
                    await self.prune()
                    await self._checkpoint()
        finally:
            # Cancellation (shutdown) must not lose the last quarter second of requests;
            # the deadline bounds how long a slow disk can hold up the exit.
            with anyio.move_on_after(self._close_timeout, shield=True):
                await self.flush()
            self._wake = None

    async def flush(self) -> None:
        """Write everything buffered now, in transactions of at most ``batch`` records.

        A batch is written on the event loop thread when the connection is free (about
        1 ms for 256 records; the WAL is not fsynced there), with a checkpoint between
        batches so requests run in between. A worker thread would cost the API more than
        the write: every syscall of the loop would hand the GIL over and back. A slow
        write sends the next ones to a worker thread for a while, as does a busy connection.
        """
        while self._pending:
            popleft = self._pending.popleft
            batch = [popleft() for _ in range(min(len(self._pending), self._batch))]
            write = partial(self._write, batch)
            began = time.monotonic()
            if began >= self._thread_until and self._db.run_here(write):
                self._announce()
                if time.monotonic() - began > self._slow_write:
                    self._thread_until = time.monotonic() + _SLOW_FOR
                    log.info("request log: slow disk; writing from a worker thread for a while")
                await anyio.lowlevel.checkpoint()
                continue
            self._inflight[id(batch)] = batch
            try:
                # The counters move inside the worker: if we are cancelled while the
                # (uncancellable) thread runs, the await never returns but the rows are in.
                await self._db.run(write)
            finally:
                del self._inflight[id(batch)]
                self._announce()

    async def _checkpoint(self) -> None:
        try:
            await self._db.checkpoint()
        except sqlite3.Error as e:
            log.warning("request log: WAL checkpoint failed: %s", e)

    def _write(self, batch: list[RequestRecord], conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN")
            try:
                for start in range(0, len(batch), _CHUNK):
                    chunk = batch[start : start + _CHUNK]
                    values = list(chain.from_iterable(chunk))
                    conn.execute(_insert(len(chunk)), values)
                conn.execute("COMMIT")
            finally:
                _end_transaction(conn)
        except sqlite3.Error as e:
            # The request log must not take the node down: count the loss, say why (the
            # state component shows write_error in `gate status`) and carry on.
            path = self._db.path
            advice = _advice(e, path)
            error = (
                f"request log: cannot write to {path}: {e}; requests are not being recorded"
                f" ({advice})"
            )
            if self._write_error is None:
                self._failed_since = self._failed
            self._failed += len(batch)
            # Once per kind of failure, not per batch: a full disk fails four batches a second.
            log.log(
                logging.DEBUG if error == self._write_error else logging.WARNING,
                "request log: could not write %d records to %s: %s (%s)",
                len(batch),
                path,
                e,
                advice,
            )
            self._write_error = error
            return
        self._written += len(batch)
        self._flushes += 1
        if self._write_error is not None:
            self._write_error = None
            log.warning(
                "request log: writing to %s again; %d records were lost while writes failed",
                self._db.path,
                self._failed - self._failed_since,
            )

    def _unwritten(self) -> list[RequestRecord]:
        return [r for batch in self._inflight.values() for r in batch] + [*self._pending]

    async def prune(self) -> int:
        """Delete rows older than ``max_age`` or past the newest ``retention``; return the count."""
        cutoff = time.time() - self._max_age
        retention = self._retention

        def delete(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.execute("BEGIN")
            try:
                conn.execute("DELETE FROM requests WHERE started_at < ?", (cutoff,))
                # Keep the newest `retention` rows by insertion order; NULL (fewer rows) keeps all.
                conn.execute(
                    "DELETE FROM requests WHERE seq <="
                    " (SELECT seq FROM requests ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (retention,),
                )
                conn.execute("COMMIT")
            finally:
                _end_transaction(conn)
            return conn.total_changes - before

        try:
            return await self._db.run(delete)
        except sqlite3.Error as e:
            log.warning("request log: pruning failed: %s", e)
            return 0

    # -- queries --------------------------------------------------------------------------

    async def list(
        self,
        *,
        limit: int = 100,
        before: float | None = None,
        model: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        """Records newest first (by ``started_at``), with ``started_at < before`` when given.

        Includes records still in the buffer, so a request shows up as soon as it is recorded.
        """
        # Snapshot the unwritten records first: anything taken later by the writer is
        # committed before our query gets the lock, so nothing falls between the two.
        unwritten = [r for r in self._unwritten() if _matches(r, before, model, status)]
        where: list[str] = []
        args: list[object] = []
        if before is not None:
            where.append("started_at < ?")
            args.append(before)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        sql = f"SELECT {_COLUMNS} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(max(limit, 0))

        def query(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        stored = [RequestRecord._from_row(row) for row in await self._db.run(query)]
        if not unwritten:
            return stored
        seen = {r.id for r in stored}
        merged = stored + [r for r in unwritten if r.id not in seen]
        merged.sort(key=lambda r: r.started_at, reverse=True)
        return merged[: max(limit, 0)]

    async def get(self, request_id: str) -> RequestRecord | None:
        """The record with this id, from the buffer or state.db."""
        for rec in self._unwritten():
            if rec.id == request_id:
                return rec

        def query(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = conn.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE id = ? ORDER BY seq DESC LIMIT 1",
                (request_id,),
            ).fetchone()
            return row

        row = await self._db.run(query)
        return RequestRecord._from_row(row) if row else None
