"""The node's log lines are written whole or not at all, even when the file cannot grow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.tmpfs import fill, mounted_tmpfs

# The child logs through the handler `gate up` installs, into a file opened for appending
# as `gate up -d` opens gate.log, and that file cannot grow past LIMIT bytes.
CHILD = """\
import logging, os, resource, signal, sys
from gate_runner.logs import JsonFormatter, LineHandler

limit = int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
handler = LineHandler(fd)
handler.setFormatter(JsonFormatter())
log = logging.getLogger("child")
log.addHandler(handler)
log.propagate = False
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
for n in range(40):
    log.warning("line %d %s", n, "x" * 100)
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
else:
    os.unlink(sys.argv[3])  # the filler: room again
log.warning("room again")
"""


def lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"half a line at the end: {data[-120:]!r}"
    return [str(json.loads(line)["msg"]) for line in data.decode().splitlines()]


def run_child(log: Path, limit: int, filler: Path | None = None) -> None:
    subprocess.run(
        [sys.executable, "-c", CHILD, str(log), str(limit), str(filler or "")],
        check=True,
        timeout=30,
    )


def assert_kept_then_said(messages: list[str], because: str) -> None:
    """The lines that fitted, whole and in order; then a note of how many were lost."""
    kept = len(messages) - 2
    assert 0 < kept < 40
    assert messages[:kept] == [f"line {n} {'x' * 100}" for n in range(kept)]
    assert messages[kept:] == [f"{40 - kept} log lines were lost: {because}", "room again"]


def test_a_line_that_does_not_fit_is_taken_back_whole(tmp_path: Path) -> None:
    log = tmp_path / "gate.log"
    run_child(log, 1000)  # room for 5 lines, and a part of the 6th
    assert_kept_then_said(lines(log), "file too large")


def test_a_full_disk_takes_back_the_cut_line(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "fs", size="64k") as fs:
        log = fs / "gate.log"
        log.write_text(json.dumps({"msg": "before"}) + "\n")  # the file has its first page
        filler = fill(fs)
        run_child(log, 0, filler)  # the rest of that page: some lines, and a part of one
        messages = lines(log)
        assert messages[0] == "before"
        assert_kept_then_said(messages[1:], "no space left on device")
