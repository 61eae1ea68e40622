"""Load generators for bench/gateway.py: wrk (C, keep-alive) for latency percentiles and
throughput, and a lean blocking HTTP/1.1 client for probes and time to first SSE event."""

from __future__ import annotations

import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# wrk has no flag for a POST body: a Lua script sets it. done() prints the summary in one
# machine-readable line; latencies are wrk's own, in microseconds, from the request's write
# to the response's last byte on a kept-alive connection.
_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("GATEBENCH %d %d %.1f %.1f %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and timeouts
    bad_status: int  # responses with status >= 400

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    url: str, body: bytes, *, connections: int, seconds: int, workdir: Path, timeout: int = 10
) -> WrkResult:
    """POST `body` to `url` over `connections` kept-alive connections for `seconds` (whole
    seconds: wrk takes no fractions). One wrk thread: on one core it outruns every server here."""
    script = workdir / "wrk-post.lua"
    if b"]==]" in body:
        raise ValueError("the request body cannot hold ']==]' (the Lua long-string delimiter)")
    script.write_text(_WRK_SCRIPT.format(body=body.decode()))
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, seconds)}s",
        f"--timeout={timeout}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout + 30)
    for line in done.stdout.splitlines():
        if line.startswith("GATEBENCH "):
            n, micros, p50, p99, errors, bad = line.split()[1:]
            return WrkResult(
                requests=int(n),
                seconds=int(micros) / 1e6,
                p50_ms=float(p50) / 1000,
                p99_ms=float(p99) / 1000,
                errors=int(errors),
                bad_status=int(bad),
            )
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}):\n{done.stderr[-2000:]}")


# -- a lean HTTP/1.1 client ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    first_event_s: float | None  # from the request's send to the first "data:" received
    total_s: float

    @property
    def events(self) -> int:
        """SSE data events, not counting the closing [DONE]."""
        return self.body.count(b"data:") - self.body.count(b"[DONE]")


class Connection:
    """One kept-alive HTTP/1.1 connection: Content-Length, chunked, or read-to-close bodies.
    Blocking and single-threaded on purpose, so timing is the server's, not a scheduler's."""

    def __init__(self, port: int, *, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
        return self._sock

    def _fill(self, sock: socket.socket) -> bool:
        data = sock.recv(262144)
        if not data:
            return False
        self._buf += data
        return True

    def request(self, method: str, path: str, body: bytes = b"") -> Reply:
        sock = self._connect()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept: */*\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        began = time.perf_counter()
        sock.sendall(head + body)
        try:
            return self._read(sock, began, head_only=method == "HEAD")
        except BaseException:
            self.close()
            raise

    def _read(self, sock: socket.socket, began: float, *, head_only: bool) -> Reply:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if not self._fill(sock):
                raise ConnectionError("connection closed before the response head")
            end = buf.find(b"\r\n\r\n")
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = bytearray()
        first: float | None = None
        keep = headers.get("connection", "").lower() != "close"
        if head_only or status in (204, 304):
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                line_end = buf.find(b"\r\n")
                while line_end < 0:
                    if not self._fill(sock):
                        raise ConnectionError("connection closed inside a chunked body")
                    line_end = buf.find(b"\r\n")
                size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
                if size == 0:
                    # No trailers expected: the last chunk is "0\r\n\r\n".
                    while len(buf) < line_end + 4:
                        if not self._fill(sock):
                            raise ConnectionError("connection closed inside a chunked body")
                    del buf[: line_end + 4]
                    break
                while len(buf) < line_end + 2 + size + 2:
                    if not self._fill(sock):
                        raise ConnectionError("connection closed inside a chunked body")
                body += buf[line_end + 2 : line_end + 2 + size]
                del buf[: line_end + 2 + size + 2]
                if first is None and b"data:" in body:
                    first = time.perf_counter() - began
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(buf) < length:
                if first is None and b"data:" in buf:
                    first = time.perf_counter() - began
                if not self._fill(sock):
                    raise ConnectionError("connection closed inside the body")
            body += buf[:length]
            del buf[:length]
        else:
            keep = False
            while True:
                if first is None and b"data:" in buf:
                    first = time.perf_counter() - began
                if not self._fill(sock):
                    break
            body += buf
            buf.clear()
        total = time.perf_counter() - began
        if first is None and b"data:" in body:
            first = total
        if not keep:
            self.close()
        return Reply(status, headers, bytes(body), first, total)


@dataclass(frozen=True)
class StreamResult:
    samples: int
    ttfe_p50_ms: float
    ttfe_p99_ms: float
    events: int  # events in the last stream (all streams are checked to agree)


def time_first_event(
    port: int, path: str, body: bytes, *, requests: int, warmup: int, max_seconds: float
) -> StreamResult:
    """Time to first SSE event at concurrency 1, over up to `requests` streams (fewer when
    `max_seconds` runs out first), each read to its end on one kept-alive connection."""
    conn = Connection(port)
    try:
        for _ in range(warmup):
            conn.request("POST", path, body)
        ttfe: list[float] = []
        events: set[int] = set()
        deadline = time.monotonic() + max_seconds
        while len(ttfe) < requests and time.monotonic() < deadline:
            reply = conn.request("POST", path, body)
            if reply.status != 200 or reply.first_event_s is None:
                raise RuntimeError(f"stream answered {reply.status}: {reply.body[:300]!r}")
            ttfe.append(reply.first_event_s)
            events.add(reply.events)
    finally:
        conn.close()
    if len(events) != 1:
        raise RuntimeError(f"streams carried different numbers of events: {sorted(events)}")
    cuts = statistics.quantiles(ttfe, n=100, method="inclusive")
    return StreamResult(len(ttfe), cuts[49] * 1000, cuts[98] * 1000, events.pop())
