"""A damaged state.db at start: set aside as found (with its WAL), a fresh one in its place,
and said loudly; gate.yaml and the key untouched. Real files and real SQLite throughout."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from gate_runner.identity import Identity
from gate_runner.state import RequestLog, RequestRecord, StateDB, StateError, new_request_id

T = TypeVar("T")

DOCUMENT = "apiVersion: gate.hellas.ai/v1\nkind: Node\n" + "# padding\n" * 200


def record(n: int) -> RequestRecord:
    return RequestRecord(
        id=new_request_id(),
        started_at=1_700_000_000.0 + n,
        method="POST",
        path="/v1/chat/completions",
        model="llama3",
        source="127.0.0.1:54321",
        target_node=None,
        provider="ollama",
        status=200,
        latency_ms=12.5,
        ttft_ms=3.25,
        prompt_tokens=10,
        completion_tokens=20,
        attempts=1,
        stream=False,
        error=None,
    )


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn, backend="trio")


def make_history(path: Path, *, generations: int = 12, requests: int = 3000) -> None:
    """A state.db of many pages: spec history and request rows, checkpointed into the file."""
    db = StateDB(path)
    for _ in range(generations):
        db._append(origin="apply", source="gate.yaml", digest="d" * 64, document=DOCUMENT)
    log = RequestLog(db)
    for n in range(requests):
        log.record(record(n))
    run(log.flush)
    assert log.stats["written"] == requests
    db.close()  # the last connection to close checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    assert path.stat().st_size > (100 if requests > 1000 else 5) * 4096


def fingerprint(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_ino, st.st_mtime_ns, st.st_mode


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A dataDir as a node leaves it: the key, and the spec next to it."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    Identity.generate().save(data / "identity.pem")
    (data / "gate.yaml").write_text(DOCUMENT)
    return data


def truncate_to_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garbage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(random.Random(1).randbytes(100))


def garbage_in_the_middle(path: Path) -> None:
    # 512 bytes into a b-tree page half way in: the header and the pages SQLite reads at
    # open stay good, so only a check that walks every page finds it.
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2 + 1000)
        f.write(random.Random(2).randbytes(512))


def emptied(path: Path) -> None:
    os.truncate(path, 0)


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate_to_half, "was corrupt (database disk image is malformed)"),
    "garbage header": (garbage_header, "was corrupt (file is not a database)"),
    "garbage in the middle": (garbage_in_the_middle, "was corrupt (quick_check: "),
    "zero length": (emptied, "was empty (0 bytes)"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_state_db_is_set_aside_and_a_fresh_one_started(
    data_dir: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "state.db"
    make_history(path)
    damage_fn, reason = DAMAGE[damage]
    damage_fn(path)
    found = path.read_bytes()
    key, spec = fingerprint(data_dir / "identity.pem"), fingerprint(data_dir / "gate.yaml")

    with caplog.at_level(logging.WARNING, logger="gate_runner.state.db"):
        db = StateDB(path)
    try:
        (moved,) = db.set_aside
        assert moved.path.parent == data_dir
        assert moved.path.name.startswith("state.db.corrupt-")
        assert moved.reason.startswith(reason), moved.reason
        assert moved.path.read_bytes() == found  # as it was found, not checkpointed into
        # A fresh, working database in its place: the history restarts at generation 1.
        assert run(db.last_entry) is None
        entry = db._append(origin="startup", source="s", digest="d", document="x")
        assert entry.generation == 1
        assert run(RequestLog(db).list) == []
    finally:
        db.close()
    # Said loudly, naming the moved file, the reason and the restart at generation 1.
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert str(moved.path) in error.getMessage() and reason in error.getMessage()
    assert "restarted at generation 1" in error.getMessage()
    assert str(moved.path) in moved.describe() and reason in moved.describe()
    assert fingerprint(data_dir / "identity.pem") == key
    assert fingerprint(data_dir / "gate.yaml") == spec
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(
        ["gate.yaml", "identity.pem", "state.db", moved.path.name]
    )


def test_the_wal_goes_aside_with_its_database(data_dir: Path) -> None:
    path = data_dir / "state.db"
    make_history(path)
    # A node that died with its last rows only in the WAL (commits never checkpoint).
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from pathlib import Path\n"
            "from gate_runner.state import StateDB\n"
            "db = StateDB(Path(sys.argv[1]))\n"
            "db._append(origin='startup', source='s', digest='d', document='doc')\n"
            "os._exit(0)\n",
            str(path),
        ],
        check=True,
    )
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    garbage_in_the_middle(path)
    found = {suffix: Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal")}

    db = StateDB(path)
    db.close()
    (moved,) = db.set_aside
    for suffix, content in found.items():
        assert Path(f"{moved.path}{suffix}").read_bytes() == content, suffix
    # The -shm is only an index of the WAL (the check's reads rewrite it), but it goes too.
    assert Path(f"{moved.path}-shm").exists() and not Path(f"{path}-shm").exists()


def test_a_healthy_state_db_keeps_its_history(data_dir: Path) -> None:
    path = data_dir / "state.db"
    make_history(path, generations=3, requests=10)
    db = StateDB(path)
    try:
        assert db.set_aside == ()
        last = run(db.last_entry)
        assert last is not None and last.generation == 3
    finally:
        db.close()
    assert [p.name for p in data_dir.glob("state.db*")] == ["state.db"]


def test_a_fresh_data_dir_is_not_a_recovery(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "state.db"
    with caplog.at_level(logging.WARNING, logger="gate_runner.state.db"):
        db = StateDB(path)
    db.close()
    assert db.set_aside == () and caplog.records == []
    # Never a file of 0 bytes, even for a moment after the start: an empty state.db means
    # one that was emptied, not one we were still making.
    assert path.stat().st_size > 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["gate.yaml", "identity.pem", "state.db"]


def test_the_notice_stays_until_the_set_aside_file_is_removed(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = data_dir / "state.db"
    make_history(path, generations=2, requests=0)
    emptied(path)
    StateDB(path).close()  # `gate up -d` opens state.db in the foreground first
    time.sleep(1.1)  # a second recovery gets a later name
    garbage_header(path)
    StateDB(path).close()

    # The node that runs next did not move anything, and still says what happened.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gate_runner.state.db"):
        db = StateDB(path)
    db.close()
    newest, oldest = db.set_aside
    assert newest.reason == "was corrupt" and oldest.reason == "was empty (0 bytes)"
    assert newest.path.name > oldest.path.name
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and str(newest.path) in warned[0], warned

    newest.path.unlink()
    oldest.path.unlink()
    db = StateDB(path)
    db.close()
    assert db.set_aside == ()


def test_a_wal_left_without_its_database_is_not_replayed(data_dir: Path) -> None:
    path = data_dir / "state.db"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from pathlib import Path\n"
            "from gate_runner.state import StateDB\n"
            "db = StateDB(Path(sys.argv[1]))\n"
            "for n in range(5):\n"
            "    db._append(origin='apply', source='s', digest='d', document='doc')\n"
            "os._exit(0)\n",
            str(path),
        ],
        check=True,
    )
    path.unlink()  # by hand, to start over; the -wal and -shm stay behind
    wal = Path(f"{path}-wal").read_bytes()
    db = StateDB(path)
    try:
        assert run(db.last_entry) is None
        (orphan,) = data_dir.glob("state.db.orphan-*-wal")
        assert orphan.read_bytes() == wal
    finally:
        db.close()


def test_a_database_sqlite_cannot_read_is_an_error_not_a_recovery(data_dir: Path) -> None:
    path = data_dir / "state.db"
    path.mkdir()  # not a file at all: nothing to set aside, and the fix is the user's
    with pytest.raises(StateError, match="state.db") as raised:
        StateDB(path)
    assert "dataDir" in str(raised.value)
    assert list(data_dir.glob("state.db.corrupt-*")) == []


def test_quick_check_is_what_finds_garbage_in_the_middle(tmp_path: Path) -> None:
    """The damage of the middle case is invisible to the reads a start makes: only the
    check finds it (else the test above would pass without it)."""
    path = tmp_path / "state.db"
    make_history(path)
    garbage_in_the_middle(path)
    conn = sqlite3.connect(path)
    try:
        conn.execute("SELECT MAX(generation) FROM spec_history").fetchone()
        assert conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]
    finally:
        conn.close()
