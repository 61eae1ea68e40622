"""The request log on a disk that fills up and empties again: a real tmpfs, real SQLite."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from gate_runner.components.state import state_conditions
from gate_runner.state import RequestLog, StateDB
from gate_runner.state.db import SetAside
from tests.state.test_recovery import record
from tests.tmpfs import fill, mounted_tmpfs


def test_failed_writes_are_reported_until_writes_succeed_again(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "fs") as fs:
        db = StateDB(fs / "state.db")
        try:
            anyio.run(_fill_then_free, fs, db, backend="trio")
        finally:
            db.close()


async def _fill_then_free(fs: Path, db: StateDB) -> None:
    log = RequestLog(db)
    seen: list[str | None] = []

    async def follow() -> None:
        while True:
            await log.write_error_changed()
            seen.append(log.write_error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await anyio.sleep(0.01)
        for n in range(10):
            log.record(record(n))
        await log.flush()
        assert log.write_error is None and seen == []

        filler = fill(fs)
        for n in range(2000):  # far more than the WAL's free pages hold
            log.record(record(n))
        await log.flush()
        error = log.write_error
        assert error is not None
        assert "database or disk is full" in error and "no space left on device" in error
        assert str(fs) in error  # where to free space
        assert log.stats["failed"] > 0
        with anyio.fail_after(5):
            while seen != [error]:
                await anyio.sleep(0.01)
        conditions = state_conditions(path=db.path, set_aside=(), write_error=error)
        assert conditions == ("WriteFailing", error, True)

        # Room again: the next batch goes in, and the condition clears by itself.
        filler.unlink()
        log.record(record(5000))
        await log.flush()
        assert log.write_error is None
        with anyio.fail_after(5):
            while seen != [error, None]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert [r.started_at for r in await log.list(limit=1)] == [1_700_000_000.0 + 5000]


@pytest.mark.parametrize(
    ("set_aside", "write_error", "expected"),
    [
        ((), None, ("Open", "/d/state.db", False)),
        ((), "request log: cannot write", ("WriteFailing", "request log: cannot write", True)),
        (
            (SetAside(Path("/d/state.db.corrupt-20260101T120000Z"), "was empty (0 bytes)"),),
            None,
            (
                "Recovered",
                "state.db was empty (0 bytes), so the spec history restarted at generation 1"
                " (and the request log empty) at 2026-01-01T12:00:00Z; the old file is"
                " /d/state.db.corrupt-20260101T120000Z. gate.yaml and the key were not"
                " touched. Remove that file to clear this notice",
                True,
            ),
        ),
        (
            (
                SetAside(Path("/d/state.db.corrupt-20260102T000000Z"), "was corrupt"),
                SetAside(Path("/d/state.db.corrupt-20260101T120000Z"), "was corrupt"),
            ),
            "request log: cannot write",
            (
                "WriteFailing",
                "request log: cannot write; state.db was corrupt, so the spec history restarted"
                " at generation 1 (and the request log empty) at 2026-01-02T00:00:00Z; the old"
                " file is /d/state.db.corrupt-20260102T000000Z. gate.yaml and the key were not"
                " touched. Remove that file to clear this notice (and 1 older"
                " state.db.corrupt-* files)",
                True,
            ),
        ),
    ],
)
def test_state_conditions(
    set_aside: tuple[SetAside, ...], write_error: str | None, expected: tuple[str, str, bool]
) -> None:
    got = state_conditions(path=Path("/d/state.db"), set_aside=set_aside, write_error=write_error)
    assert got == expected
