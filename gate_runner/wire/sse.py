"""Server-sent events as bytes: encoding one event, and an incremental parser that reads
a stream cut at arbitrary points (the WHATWG event-stream grammar)."""

from __future__ import annotations

__all__ = ("DONE", "SSEEvent", "SSEParser", "StreamEnd", "encode_event", "encode_json")

import json
import re
from dataclasses import dataclass

DONE = b"data: [DONE]\n\n"
"""OpenAI's end-of-stream sentinel. Not every server sends it, so never wait for it."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_event(data: bytes | str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event, ``data`` split over as many ``data:`` lines as it has lines.

    ``event`` and ``id`` must be single lines: a line break there would start another field.
    """
    text = data.decode() if isinstance(data, bytes) else data
    out: list[str] = []
    for name, value in (("event", event), ("id", id)):
        if value is not None:
            if _LINE_BREAK.search(value):
                raise ValueError(f"an SSE {name} cannot contain a line break: {value!r}")
            out.append(f"{name}: {value}\n")
    out.extend(f"data: {line}\n" for line in _LINE_BREAK.split(text))
    out.append("\n")
    return "".join(out).encode()


def encode_json(obj: object) -> bytes:
    """One ``data:`` event holding ``obj`` as compact JSON (never more than one line)."""
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


# What only a finished stream carries: the sentinel, a non-null finish reason (JSON with or
# without spaces), or an error event that already told the client what went wrong.
_ENDINGS = (b"[DONE]", b'"finish_reason":"', b'"finish_reason": "', b'data: {"error"')
_CARRY = max(map(len, _ENDINGS)) - 1


class StreamEnd:
    """Watches an OpenAI-style SSE stream pass, to tell an ending from a cut.

    A stream framed by the connection's close has no end of its own: a server that dies
    mid-generation looks like one that finished. Not every server sends ``[DONE]`` (DESIGN.md
    12), but every finished completion has a finish reason, so a stream with neither was cut.
    Bytes are scanned, never parsed, and the last few bytes of each chunk are kept, since a
    chunk may end in the middle of a marker.
    """

    __slots__ = ("finished", "_tail")

    def __init__(self) -> None:
        self.finished = False
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.finished:
            return
        window = self._tail + chunk if self._tail else chunk
        if any(marker in window for marker in _ENDINGS):
            self.finished = True
            return
        self._tail = window[-_CARRY:]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. ``event`` is None when the stream gave no ``event:`` field."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self) -> object:
        return json.loads(self.data)


class SSEParser:
    """Feed it the bytes of an event stream in any chunking; it returns each event once the
    blank line that ends it has arrived.

    It only reads: callers forward the original bytes and use the events to learn things
    (usage, the first token) without re-encoding the stream. As the standard says, an event
    not yet ended by a blank line when the stream closes is dropped.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._started = False  # a leading BOM is only skipped at the very start
        self._skip_lf = False  # the last chunk ended in "\r": a "\n" opening the next is its pair
        self._data: list[str] = []
        self._has_data = False
        self._event: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf  # could still be the start of a BOM
                return []
            self._started = True
            if buf.startswith(b"\xef\xbb\xbf"):
                buf = buf[3:]
        lines = buf.splitlines(keepends=True)  # bytes split on \r\n, \r and \n only
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            self._buf = lines.pop()
        else:
            self._buf = b""
            self._skip_lf = buf.endswith(b"\r")
        events: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:  # the id outlives its event, as in a browser's EventSource
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # Other field names are ignored, as the standard says.
        return None

    def _dispatch(self) -> SSEEvent | None:
        event = None
        if self._has_data:
            event = SSEEvent(
                data="\n".join(self._data),
                event=self._event or None,
                id=self.last_event_id,
                retry=self._retry,
            )
        self._data = []
        self._has_data = False
        self._event = None
        self._retry = None
        return event
