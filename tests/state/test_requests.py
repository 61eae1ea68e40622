"""The request log against a real state.db in tmp_path: batching, queries, pruning, shutdown."""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from gate_runner.state import RequestLog, RequestRecord, StateDB, new_request_id

pytestmark = pytest.mark.anyio

SCHEMA = Path(__file__).parents[2] / "migrations" / "state"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[StateDB]:
    d = StateDB(db_path)
    yield d
    d.close()


def rec(
    n: int = 0,
    *,
    started_at: float | None = None,
    model: str | None = "llama3",
    status: int = 200,
    **kw: Any,
) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": new_request_id(),
        "started_at": 1_700_000_000.0 + n if started_at is None else started_at,
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": model,
        "source": "127.0.0.1:54321",
        "target_node": None,
        "provider": "ollama",
        "status": status,
        "latency_ms": 12.5,
        "ttft_ms": 3.25,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "attempts": 1,
        "stream": False,
        "error": None,
    }
    fields.update(kw)
    return RequestRecord(**fields)


async def count_rows(db: StateDB) -> int:
    def q(conn: sqlite3.Connection) -> int:
        (n,) = conn.execute("SELECT COUNT(*) FROM requests").fetchone()
        return int(n)

    return await db.run(q)


async def stored_ids(db: StateDB) -> list[str]:
    def q(conn: sqlite3.Connection) -> list[str]:
        return [row[0] for row in conn.execute("SELECT id FROM requests ORDER BY seq")]

    return await db.run(q)


async def wait_for(cond: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not cond():
            await anyio.sleep(0.005)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Transactions:
    """Splits the statements sqlite traces into transactions: one list of INSERTs per BEGIN."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.threads: list[int] = []  # the thread that ran each statement

    def __call__(self, sql: str) -> None:  # runs where the statement runs
        self.statements.append(sql)
        self.threads.append(threading.get_ident())

    def insert_threads(self) -> list[int]:
        return [
            thread
            for sql, thread in zip(self.statements, self.threads, strict=True)
            if sql.startswith("INSERT INTO requests")
        ]

    @property
    def insert_batches(self) -> list[int]:
        sizes: list[int] = []
        for sql in self.statements:
            if sql == "BEGIN":
                sizes.append(0)
            elif sql.startswith("INSERT INTO requests"):
                # Rows in this multi-row statement (traced with its values filled in).
                sizes[-1] += sql.partition(" VALUES ")[2].count("), (") + 1
        return sizes


async def trace(db: StateDB) -> Transactions:
    tx = Transactions()

    def install(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(tx)

    await db.run(install)
    return tx


# -- schema -------------------------------------------------------------------------------


async def test_existing_v1_database_gains_requests_table(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.executescript((SCHEMA / "0001_init.sql").read_text())
    conn.execute("INSERT INTO spec_history VALUES (1, 't', 'startup', 'f', 'd', 'doc')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()

    db = StateDB(db_path)
    try:
        version = await db.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        assert version >= 2
        assert (await db.entry(1)) is not None  # step 2 left the spec history alone
        assert await count_rows(db) == 0
    finally:
        db.close()


# -- the record ---------------------------------------------------------------------------


def test_to_dict_uses_camel_case() -> None:
    r = rec(target_node="bob", error="upstream timed out", status=504, stream=True)
    assert r.to_dict() == {
        "id": r.id,
        "startedAt": r.started_at,
        "method": "POST",
        "path": "/v1/chat/completions",
        "model": "llama3",
        "source": "127.0.0.1:54321",
        "targetNode": "bob",
        "provider": "ollama",
        "status": 504,
        "latencyMs": 12.5,
        "ttftMs": 3.25,
        "promptTokens": 10,
        "completionTokens": 20,
        "attempts": 1,
        "stream": True,
        "error": "upstream timed out",
    }


def test_request_ids_are_prefixed_and_unique() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("req_") and len(i) == 28 for i in ids)
    assert all(int(i[4:], 16) >= 0 for i in ids)
    assert new_request_id("chatcmpl-").startswith("chatcmpl-")


def test_request_ids_sort_by_time() -> None:
    """Their first 12 hex digits are the millisecond, so state.db's id index grows at its
    end (random ids cost about three times as much per insert)."""
    ids = []
    for _ in range(5):
        ids.append(new_request_id())
        time.sleep(0.002)
    assert sorted(ids) == ids
    millis = int(ids[0][4:16], 16)
    assert abs(millis / 1000 - time.time()) < 5


async def test_records_round_trip_through_the_database(db: StateDB) -> None:
    log = RequestLog(db)
    sparse = {"ttft_ms": None, "prompt_tokens": None, "completion_tokens": None}
    original = [
        rec(1, stream=True),
        rec(
            2,
            model=None,
            provider=None,
            target_node="bob",
            status=404,
            error="no such model",
            attempts=3,
            **sparse,
        ),
    ]
    for r in original:
        log.record(r)
    await log.flush()
    assert log.stats["buffered"] == 0
    assert await log.list() == original[::-1]
    assert await log.get(original[1].id) == original[1]
    assert await log.get("req_missing") is None


# -- batching -----------------------------------------------------------------------------


async def test_full_batches_wake_the_writer_and_each_is_one_transaction(db: StateDB) -> None:
    tx = await trace(db)
    # A long interval: only a full batch can start a write here.
    log = RequestLog(db, flush_interval=60, batch=100)
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        for i in range(99):
            log.record(rec(i))
        await anyio.sleep(0.2)
        assert log.stats == {"buffered": 99, "written": 0, "dropped": 0, "failed": 0, "flushes": 0}
        assert tx.insert_batches == []

        for i in range(99, 250):  # crosses the batch size: the writer drains everything
            log.record(rec(i))
        await wait_for(lambda: log.stats["written"] == 250)
        assert tx.insert_batches == [100, 100, 50]
        assert log.stats["flushes"] == 3
        assert tx.statements.count("COMMIT") == 3
        tg.cancel_scope.cancel()
    assert await count_rows(db) == 250


async def test_the_interval_flushes_a_partial_batch(db: StateDB) -> None:
    tx = await trace(db)
    log = RequestLog(db, flush_interval=0.05, batch=512)
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        for i in range(10):
            log.record(rec(i))
        await wait_for(lambda: log.stats["written"] == 10)
        assert tx.insert_batches == [10]
        # Idle ticks write nothing.
        await anyio.sleep(0.2)
        assert tx.insert_batches == [10]
        tg.cancel_scope.cancel()


async def test_batches_are_written_on_the_event_loop_thread(db: StateDB) -> None:
    """A worker thread would cost the API more in GIL handoffs than the write itself."""
    tx = await trace(db)
    log = RequestLog(db, batch=10)
    for i in range(25):
        log.record(rec(i))
    await log.flush()
    assert tx.insert_batches == [10, 10, 5]
    assert set(tx.insert_threads()) == {threading.get_ident()}
    assert await count_rows(db) == 25


async def test_a_busy_connection_sends_the_batch_to_a_worker_thread(db: StateDB) -> None:
    tx = await trace(db)
    log = RequestLog(db)
    log.record(rec(1))
    holder_has_it = threading.Event()
    release = threading.Event()

    def hold() -> None:  # another user of the connection, e.g. a spec history query
        with db._lock:
            holder_has_it.set()
            release.wait(5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, hold)
        await anyio.to_thread.run_sync(holder_has_it.wait, 5)
        tg.start_soon(log.flush)  # does not block the loop: the batch waits in a thread
        await anyio.sleep(0.05)
        assert log.stats["buffered"] == 1  # still counted, in the batch the thread holds
        release.set()
    assert log.stats["written"] == 1
    assert tx.insert_threads() and threading.get_ident() not in tx.insert_threads()


async def test_a_slow_write_sends_the_next_ones_to_a_worker_thread(db: StateDB) -> None:
    tx = await trace(db)
    log = RequestLog(db, slow_write=0.0)  # every write counts as slow
    log.record(rec(1))
    await log.flush()
    log.record(rec(2))
    await log.flush()
    first, second = tx.insert_threads()
    assert first == threading.get_ident() and second != first
    assert await count_rows(db) == 2


async def test_the_writer_checkpoints_the_wal(db: StateDB) -> None:
    """Commits never checkpoint (that would fsync on the event loop thread); the writer
    does, in a worker thread, on its pruning ticks."""
    tx = await trace(db)
    autocheckpoint = await db.run(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    assert autocheckpoint == 0
    log = RequestLog(db, flush_interval=0.01, prune_every=2)
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        log.record(rec(1))
        await wait_for(lambda: "PRAGMA wal_checkpoint(PASSIVE)" in tx.statements)
        tg.cancel_scope.cancel()
    (at,) = [i for i, sql in enumerate(tx.statements) if sql.startswith("PRAGMA wal_checkpoint")]
    assert tx.threads[at] != threading.get_ident()
    busy, frames, done = await db.run(
        lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    )
    assert busy == 0 and frames == done  # nothing left behind in the WAL


# -- queries ------------------------------------------------------------------------------


async def test_list_is_newest_first_with_filters_across_buffer_and_disk(db: StateDB) -> None:
    log = RequestLog(db, flush_interval=60)
    models = ["a", "b", None]
    records = [rec(i, model=models[i % 3], status=200 if i % 4 else 500) for i in range(30)]
    # Out of started_at order on purpose: requests finish in a different order than they start.
    for r in records[10:]:
        log.record(r)
    await log.flush()
    for r in records[:10]:
        log.record(r)  # still buffered: list() must show these too
    assert log.stats["buffered"] == 10

    newest_first = sorted(records, key=lambda r: r.started_at, reverse=True)
    assert await log.list(limit=100) == newest_first
    assert await log.list(limit=5) == newest_first[:5]
    assert await log.list(limit=0) == []

    page1 = await log.list(limit=12)
    page2 = await log.list(limit=12, before=page1[-1].started_at)
    page3 = await log.list(limit=12, before=page2[-1].started_at)
    assert page1 + page2 + page3 == newest_first

    assert await log.list(model="a") == [r for r in newest_first if r.model == "a"]
    assert await log.list(status=500) == [r for r in newest_first if r.status == 500]
    both = await log.list(model="b", status=500, before=1_700_000_020.0)
    assert both == [
        r
        for r in newest_first
        if r.model == "b" and r.status == 500 and r.started_at < 1.70000002e9
    ]
    assert both  # the filter combination is not vacuous


async def test_recent_is_newest_first_and_bounded(db: StateDB) -> None:
    log = RequestLog(db)
    records = [rec(i) for i in range(1500)]
    for r in records:
        log.record(r)
    assert log.recent(3) == records[:-4:-1]
    assert len(log.recent(5000)) == 1000
    assert log.recent(5000)[-1] == records[500]
    assert log.recent(0) == []


# -- retention ----------------------------------------------------------------------------


async def test_prune_keeps_the_newest_rows_by_count(db: StateDB) -> None:
    log = RequestLog(db, retention=10, max_age=10 * 365 * 86400)
    records = [rec(i, started_at=time.time()) for i in range(25)]
    for r in records:
        log.record(r)
    await log.flush()
    assert await log.prune() == 15
    assert await stored_ids(db) == [r.id for r in records[15:]]
    assert await log.prune() == 0


async def test_prune_drops_rows_older_than_max_age(db: StateDB) -> None:
    log = RequestLog(db, max_age=3600)
    now = time.time()
    old = [rec(i, started_at=now - 7200 + i) for i in range(5)]
    fresh = [rec(i, started_at=now - 60 + i) for i in range(3)]
    for r in old + fresh:
        log.record(r)
    await log.flush()
    assert await log.prune() == 5
    assert await stored_ids(db) == [r.id for r in fresh]


async def test_the_writer_prunes_on_its_own(db: StateDB) -> None:
    log = RequestLog(db, retention=5, flush_interval=0.01, prune_every=1)
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        records = [rec(i, started_at=time.time()) for i in range(20)]
        for r in records:
            log.record(r)
        with anyio.fail_after(5):
            while await stored_ids(db) != [r.id for r in records[15:]]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()


# -- back-pressure and failure ------------------------------------------------------------


async def test_a_full_buffer_drops_the_oldest_and_counts_them(db: StateDB) -> None:
    log = RequestLog(db, max_buffer=100, batch=40)
    records = [rec(i) for i in range(150)]
    for r in records:  # no writer running: the buffer fills up
        log.record(r)
    assert log.stats == {"buffered": 100, "written": 0, "dropped": 50, "failed": 0, "flushes": 0}
    await log.flush()
    assert log.stats == {"buffered": 0, "written": 100, "dropped": 50, "failed": 0, "flushes": 3}
    assert await stored_ids(db) == [r.id for r in records[50:]]


async def test_a_failed_write_is_counted_and_logged_not_raised(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = StateDB(db_path)
    log = RequestLog(db)
    db.close()  # every write now fails with sqlite3.ProgrammingError
    log.record(rec(1))
    with caplog.at_level(logging.WARNING, logger="gate_runner.state.requests"):
        await log.flush()
    assert log.stats == {"buffered": 0, "written": 0, "dropped": 0, "failed": 1, "flushes": 0}
    assert "could not write 1 records" in caplog.text
    # The state component shows this in `gate status` until a write succeeds again.
    assert log.write_error is not None
    assert "Cannot operate on a closed database" in log.write_error
    assert str(db_path) in log.write_error and "requests are not being recorded" in log.write_error


# -- shutdown -----------------------------------------------------------------------------


async def test_cancellation_flushes_what_is_buffered(db_path: Path) -> None:
    db = StateDB(db_path)
    log = RequestLog(db, flush_interval=60, batch=512)
    records = [rec(i) for i in range(30)]
    async with anyio.create_task_group() as tg:
        await tg.start(log.run)
        for r in records:
            log.record(r)
        await anyio.sleep(0.05)
        assert log.stats["written"] == 0  # the interval has not come round
        tg.cancel_scope.cancel()
    assert log.stats["written"] == 30
    db.close()

    reopened = StateDB(db_path)
    try:
        assert await RequestLog(reopened).list() == records[::-1]
    finally:
        reopened.close()


async def test_cancellation_from_outside_still_flushes(db_path: Path) -> None:
    db = StateDB(db_path)
    log = RequestLog(db, flush_interval=60)
    with anyio.move_on_after(0.1):  # a deadline, as a shutdown would apply it
        async with anyio.create_task_group() as tg:
            await tg.start(log.run)
            for i in range(7):
                log.record(rec(i))
            await anyio.sleep_forever()
    db.close()
    reopened = StateDB(db_path)
    try:
        assert await count_rows(reopened) == 7
    finally:
        reopened.close()


async def test_db_file_stays_private(db_path: Path) -> None:
    db = StateDB(db_path)
    log = RequestLog(db)
    for i in range(10):
        log.record(rec(i))
    await log.flush()
    await log.prune()
    assert mode(db_path) == 0o600
    db.close()
    StateDB(db_path).close()
    assert mode(db_path) == 0o600


async def test_wal_files_are_private_from_the_first_open(db_path: Path) -> None:
    db = StateDB(db_path)
    try:
        log = RequestLog(db)
        log.record(rec(1))
        await log.flush()
        for suffix in ("-wal", "-shm"):
            side = db_path.with_name(db_path.name + suffix)
            assert mode(side) == 0o600, side
    finally:
        db.close()
