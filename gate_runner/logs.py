"""Log set-up: human-readable lines on a TTY, one JSON object per line otherwise, each line
written whole or not at all; and the handler that feeds log records to the event bus and
keeps the recent ones for logs.tail."""

from __future__ import annotations

__all__ = ("LineHandler", "LogFeed", "configure_logging", "log_entry")

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate_runner.events import EventBus

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def log_entry(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """One record as a flat JSON-able mapping: the log file's lines and the `log` events."""
    entry: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in _extras(record).items():
        entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(log_entry(record, self), default=str)


class LogFeed(logging.Handler):
    """Publishes each record as a `log` event and keeps the last ``keep`` for logs.tail.

    Installed on the root logger for the life of a node run. A record logged while
    publishing (by the bus itself, on any thread) is not fed back in.
    """

    def __init__(self, bus: EventBus, *, keep: int = 1000) -> None:
        super().__init__()
        self._bus = bus
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._busy = threading.local()
        self._format = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            entry = log_entry(record, self._format)
            seq = self._bus.publish("log", entry)
            self._recent.append({**entry, "seq": seq})
        except Exception:
            self.handleError(record)
        finally:
            self._busy.on = False

    def tail(self, limit: int, *, min_level: int = 0) -> list[dict[str, Any]]:
        """The newest ``limit`` records, oldest first, each with the ``seq`` of its event."""
        entries = [
            e for e in list(self._recent) if logging.getLevelName(e["level"].upper()) >= min_level
        ]
        return entries[-limit:]


class LineHandler(logging.Handler):
    """Writes each record as one line to a file descriptor, in one ``os.write``.

    A line is in the file whole or not at all. A logging.StreamHandler writes through a
    buffered stream, and on a full disk a line is cut where the space ran out while its
    rest stays in the buffer, to be glued to a later line. Here a write cut short is taken
    back (the file truncated to where the line began), and the lines lost so are counted
    and said in the next line that gets through.
    """

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._lost = 0
        self._lost_because = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if self._lost:
            note = logging.LogRecord(
                __name__,
                logging.WARNING,
                __file__,
                0,
                "%d log lines were lost: %s",
                (self._lost, self._lost_because),
                None,
            )
            if not self._write(self.format(note)):
                self._lost += 1
                return
            self._lost = 0
        if not self._write(line):
            self._lost += 1

    def _write(self, line: str) -> bool:
        """Write ``line`` and a newline whole; False (and nothing written) if it could not."""
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        written = 0
        try:
            while written < len(data):
                # A regular file takes all of it or, when space runs out, what fits: then
                # the next call fails (ENOSPC, EDQUOT, EFBIG) and the part is taken back.
                written += os.write(self._fd, data[written:])
        except OSError as e:
            self._lost_because = (e.strerror or str(e)).lower()
            if written:
                self._take_back(written)
            return False
        return True

    def _take_back(self, count: int) -> None:
        try:
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            os.ftruncate(self._fd, end - count)
            # Without O_APPEND the next write would go to the old offset, after a hole.
            os.lseek(self._fd, end - count, os.SEEK_SET)
        except OSError:
            # Not a file (a pipe or a terminal, where writes do not run out of space): end
            # the partial line so that the next one starts on its own.
            with contextlib.suppress(OSError):
                os.write(self._fd, b"\n")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(*, fmt: str = "auto", level: str = "info") -> None:
    """``fmt`` is text, json or auto (text on a TTY, json otherwise)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler: logging.Handler
    try:
        sys.stderr.flush()  # what was printed before goes first
        handler = LineHandler(sys.stderr.fileno())
    except (AttributeError, ValueError, io.UnsupportedOperation):
        handler = logging.StreamHandler(sys.stderr)  # a stderr with no descriptor (a test's)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # hypercorn announces every bind at info; ours already does.
    logging.getLogger("gate.http").setLevel(logging.WARNING)
    # watchfiles logs every filtered event at debug: a log file next to gate.yaml would
    # otherwise feed itself.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    # APScheduler logs every job run at info: a health check every 15 s per provider.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
