"""Log set-up: human-readable lines on a TTY, one JSON object per line otherwise; and the
handler that feeds log records to the event bus and keeps the recent ones for logs.tail."""

from __future__ import annotations

__all__ = ("LogFeed", "configure_logging", "log_entry")

import json
import logging
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
    handler = logging.StreamHandler(sys.stderr)
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
