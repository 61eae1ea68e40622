"""Narrow patches to py-libp2p 0.8.1 (pinned), quarantined here: whole Noise messages on the
wire whoever is cancelled, less work per yamux frame (most of a warm exchange), no task kept
per closed inbound connection, no automatic Identify, and no ERROR line per failed dial.

``install(swarm)`` is the one call that installs them, when a host starts (``P2PHost``);
importing Gate changes nothing in libp2p. It is idempotent. Outside the tested versions of
py-libp2p it logs one warning and installs nothing. Each patch names every libp2p attribute
it uses or replaces (``needs``) and checks they are still there; if py-libp2p changed, it logs
a warning and leaves libp2p alone. The figures are CPU per warm /gate/http/1 exchange of a
400 B body on loopback at c=32, both ends together unless said, with the patch on and off in
the same conditions (DESIGN.md 6).
"""

from __future__ import annotations

__all__ = (
    "TESTED_VERSIONS",
    "WRITE_STALL_TIMEOUT",
    "batch_window_updates",
    "buffer_tcp_reads",
    "drop_auto_identify",
    "filter_dial_failures",
    "install",
    "read_buffered_data_bodies",
    "send_tcp_writes_whole",
    "stop_inbound_task_leak",
    "write_small_frames_directly",
)

import importlib.metadata
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

log = logging.getLogger("gate.p2p")

# The py-libp2p versions the patches were measured and tested against: from the first,
# included, up to the second, excluded. pyproject.toml pins the first.
TESTED_VERSIONS: Final = ((0, 8, 1), (0, 9, 0))
# A write that finds the socket full waits this long for room, then breaks the connection
# (yamux's own flow-control wait is 5 s).
WRITE_STALL_TIMEOUT: Final = 10.0
# What a buffered TCP read asks of the socket: a Noise message is at most 65,537 bytes.
_TCP_READ_SIZE: Final = 65536

_warned_versions: set[str] = set()


def install(swarm: Any, *, version: str | None = None) -> bool:
    """Install every patch: on libp2p's classes (once per process), on ``swarm`` (the host's
    own), and the dial-failure log filter. ``version`` is py-libp2p's, read from its package
    metadata unless given. Returns False, having installed nothing, when it is untested.
    """
    if version is None:
        version = importlib.metadata.version("libp2p")
    if not _tested(version):
        if version not in _warned_versions:
            _warned_versions.add(version)
            low, high = (".".join(map(str, v)) for v in TESTED_VERSIONS)
            log.warning(
                "py-libp2p %s is outside the versions Gate's patches were tested with "
                "(>=%s, <%s): none is installed; install libp2p==%s",
                version,
                low,
                high,
                low,
            )
        return False
    send_tcp_writes_whole()
    buffer_tcp_reads()
    batch_window_updates()
    read_buffered_data_bodies()
    write_small_frames_directly()
    filter_dial_failures()
    drop_auto_identify(swarm)
    stop_inbound_task_leak(swarm)
    return True


def _tested(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if match is None:
        return False
    release = tuple(int(part or 0) for part in match.groups())
    low, high = TESTED_VERSIONS
    return low <= release < high


def _install(
    owner: Any, name: str, patch: Callable[[Any], Any], *, needs: tuple[str, ...] = ()
) -> None:
    """Replace ``owner.name`` (on a class, or on one object) by ``patch(original)``, once."""
    current = getattr(owner, name, None)
    if getattr(current, "_gate_patched", False):
        return
    if not _present(owner, (name, *needs), patched=name):
        return
    method = patch(current)
    method._gate_patched = True
    setattr(owner, name, method)


def _present(owner: Any, names: tuple[str, ...], *, patched: str) -> bool:
    """Whether ``owner`` still has all ``names``; if not, say which is gone."""
    absent = [n for n in names if not _has(owner, n)]
    if absent:
        what = owner.__name__ if isinstance(owner, type) else type(owner).__name__
        log.warning("py-libp2p changed (no %s.%s): %s unpatched", what, absent[0], patched)
    return not absent


def _has(owner: Any, name: str) -> bool:
    """Whether ``owner`` has ``name``: on itself or its class (where a property that fails
    until the object runs, like a swarm's ``manager``, counts), or set by its ``__init__``."""
    cls = owner if isinstance(owner, type) else type(owner)
    if hasattr(owner, name) or hasattr(cls, name):
        return True
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if name in getattr(getattr(init, "__code__", None), "co_names", ()):
            return True
    return False


def send_tcp_writes_whole() -> None:
    """Send to the TCP socket without yielding when it takes the bytes; when it is full, wait
    for room shielded from cancellation.

    The Noise session encrypts a message (advancing its nonce) and then writes it. A cancel
    landing between the two (a client leaving cancels the task writing its data, or the
    read that sends a yamux window update) loses the message, and the peer fails to decrypt
    every message after it: "Failed authentication of message", and the link drops. In
    py-libp2p 0.8.1 nothing between the encryption and this method yields, so a write that
    cannot be interrupted here is never cut, whoever the writer is. Writes are serialized
    by yamux's connection lock (and happen one at a time during the handshake), so the
    stream's own lock goes too: trio's send_all behind it yields three times per message.
    Against the shield it replaces (on SecureSession.write) this saves 40 us of the
    requesting side's 230 us.
    """
    import trio
    from libp2p.io.exceptions import ConnectionClosedError, IOException
    from libp2p.io.trio import TrioTCPStream

    async def write(self: Any, data: bytes) -> None:
        sock = self.stream.socket
        rest = memoryview(data)
        deadline: float | None = None
        while rest:
            fd = sock.fileno()
            if fd < 0:
                return  # closed here: libp2p's own write returns quietly too
            try:
                rest = rest[os.write(fd, rest) :]
                continue
            except BlockingIOError:
                pass
            except OSError as e:  # reset or broken pipe: the peer is gone
                raise ConnectionClosedError(f"TCP write failed: {e}", transport="tcp") from e
            if deadline is None:
                deadline = trio.current_time() + WRITE_STALL_TIMEOUT
            with trio.CancelScope(shield=True, deadline=deadline) as scope:
                try:
                    await trio.lowlevel.wait_writable(sock)
                except trio.ClosedResourceError:
                    return  # closed here while waiting
            if scope.cancelled_caught:
                raise IOException(f"a write stalled for {WRITE_STALL_TIMEOUT:g}s")

    _install(TrioTCPStream, "write", lambda _: write, needs=("stream",))


def buffer_tcp_reads() -> None:
    """Read the TCP socket in large chunks and serve libp2p's small reads from them.

    The Noise reader asks for a message's 2-byte length, then for the message: two recv
    syscalls (and trio checkpoints) per message, however much the socket holds. Reading up
    to 64 KiB at once and keeping the rest makes it one per batch: 50 us of 590 at c=1 (at
    c=32, where messages rarely wait in the socket, the difference is lost in the noise).
    """
    import trio
    from libp2p.io.exceptions import ConnectionClosedError
    from libp2p.io.trio import TrioTCPStream

    def take(buffer: bytearray, n: int | None) -> bytes:
        data = bytes(buffer[:n]) if n is not None and n < len(buffer) else bytes(buffer)
        # Deleting a bytearray's prefix moves its start pointer; it does not copy the rest.
        del buffer[: len(data)]
        return data

    async def read(self: Any, n: int | None = None) -> bytes:
        if n == 0:
            return b""
        buffer: bytearray | None = getattr(self, "_gate_buffer", None)
        if buffer is None:
            buffer = self._gate_buffer = bytearray()
        if buffer:
            return take(buffer, n)
        async with self.read_lock:
            if buffer:  # filled by the reader that held the lock before us
                return take(buffer, n)
            try:
                data: bytes = await self.stream.receive_some(_TCP_READ_SIZE)
            except trio.BrokenResourceError as e:
                raise ConnectionClosedError(f"TCP read failed: {e}", transport="tcp") from e
            except trio.ClosedResourceError:
                return b""  # closed here: libp2p reads that as the end of the stream
        if n is not None and len(data) > n:
            buffer += data[n:]
            data = data[:n]
        return data

    _install(TrioTCPStream, "read", lambda _: read, needs=("read_lock", "stream"))


def batch_window_updates() -> None:
    """Credit the sender's window back once half of it is used, as go-yamux does.

    py-libp2p 0.8.1 sends a WINDOW_UPDATE after every read that leaves the window short at
    all, so each small message costs a second frame the other way: one more Noise message,
    syscall and wake-up at both ends: 810 us per exchange instead of 540. The receive
    window's auto-tuning (up to 16 MiB for bulk transfers) is kept.
    """
    from libp2p.stream_muxer.yamux.yamux import YamuxStream

    async def update_window(self: Any, *, bytes_read: int = 0) -> None:
        # The credit the peer holds plus what we hold unread falls short of the target by
        # what has been read since the last update (bytes_read included).
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        delta = self.target_recv_window - (self.recv_window + buffered)
        if delta < self.target_recv_window // 2:
            return
        # Nothing else can change recv_window until the next await: no lock needed.
        self.recv_window += delta
        delta += self._apply_autotune_epoch(buffered)
        await self.send_window_update(delta)

    _install(
        YamuxStream,
        "_auto_tune_and_send_window_update",
        lambda _: update_window,
        needs=(
            "_apply_autotune_epoch",
            "conn",
            "recv_window",
            "send_window_update",
            "stream_id",
            "target_recv_window",
        ),
    )


def read_buffered_data_bodies() -> None:
    """Skip yamux's read timeout for a DATA frame whose body is already decrypted.

    yamux bounds the read of each frame's body with a 60 s ``fail_after``: a cancel scope
    and a deadline per frame, 50 us of 530 per exchange. A frame's header and body
    go out in one Noise message, so the body is almost always in the session's buffer, and
    reading it cannot block; the timeout stays for a frame that spans messages.
    """
    from libp2p.io.utils import read_exactly
    from libp2p.stream_muxer.yamux.yamux import Yamux

    def patch(original: Callable[[Any, int], Awaitable[bytes]]) -> Any:
        async def read_data_body(self: Any, length: int) -> bytes:
            conn = self.secured_conn
            held = getattr(conn, "high_watermark", 0) - getattr(conn, "low_watermark", 0)
            if held >= length:
                data: bytes = await read_exactly(conn, length)
                return data
            return await original(self, length)

        return read_data_body

    _install(Yamux, "_read_data_body", patch, needs=("secured_conn",))


def write_small_frames_directly() -> None:
    """Send a write that fits in one yamux frame and in the send window as one frame, without
    the stream's write lock and window lock.

    Each lock is a trip through trio's scheduler, and they guard code with no await in it,
    which on trio nothing can interrupt; libp2p releases both before writing the frame, so
    the order of frames is the same. 20 us of the requesting side's 230. A larger write, or
    one that must wait for window, takes libp2p's path.
    """
    import struct

    from libp2p.stream_muxer.yamux import yamux

    max_payload = yamux.MAX_MESSAGE_SIZE - yamux.HEADER_SIZE

    def patch(original: Callable[[Any, bytes], Awaitable[None]]) -> Any:
        async def write(self: Any, data: bytes) -> None:
            size = len(data)
            if not (0 < size <= min(max_payload, self.send_window)) or (
                self.send_closed or self.closed
            ):
                await original(self, data)
                return
            self.send_window -= size
            header = struct.pack(
                yamux.YAMUX_HEADER_FORMAT, 0, yamux.TYPE_DATA, 0, self.stream_id, size
            )
            await self.conn._write_frame(header + data)

        return write

    _install(
        yamux.YamuxStream,
        "write",
        patch,
        needs=("closed", "conn", "send_closed", "send_window", "stream_id"),
    )


class _DialFailureFilter(logging.Filter):
    """Drops py-libp2p's ERROR lines for an outbound dial that failed. ``P2PHost.connect()``
    raises the same failure with its root cause, and its caller decides how loud to be: a
    peer that is down is redialed forever, and these made one ERROR per try."""

    MESSAGES: Final = frozenset(
        {
            "Failed to open TCP stream: %s",  # libp2p.transport.tcp.tcp, dialing only
            "Unexpected error opening TCP stream: %s",
            "failed to upgrade security for peer %s: %s",  # swarm, outbound only
        }
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.MESSAGES


_DIAL_FAILURES: Final = _DialFailureFilter()
_DIAL_FAILURE_LOGGERS: Final = ("libp2p.transport.tcp.tcp", "libp2p.network.swarm")


def filter_dial_failures() -> None:
    """Install ``_DialFailureFilter`` on the two libp2p loggers that log failed dials. Not a
    patch, but it changes what libp2p logs, so it is installed with them."""
    for name in _DIAL_FAILURE_LOGGERS:
        logging.getLogger(name).addFilter(_DIAL_FAILURES)  # idempotent: one instance


def drop_auto_identify(swarm: Any) -> None:
    """Unregister, from this host's swarm, BasicHost's notifee that runs Identify on every
    new connection.

    It spawns trio system tasks (outside any nursery of ours), costs a stream, a protobuf
    exchange and a signed-record check per connection, and logs ERRORs when a connection
    closes before it finishes. Gate learns what it needs from /gate/hello/1; the Identify
    handler stays, so peers can still ask us.
    """
    if not _present(swarm, ("notifees", "remove_notifee"), patched="automatic Identify"):
        return
    for notifee in list(swarm.notifees):
        if type(notifee).__name__ == "_IdentifyNotifee":
            swarm.remove_notifee(notifee)


def stop_inbound_task_leak(swarm: Any) -> None:
    """Replace this host's swarm's inbound connection handler with one that ends with the
    connection.

    Each inbound TCP connection has a task in the listener's nursery, and trio closes the
    socket when that task returns, so it must live as long as the connection. py-libp2p
    0.8.1's handler waits for ``swarm.manager.wait_finished()``, i.e. until the host closes:
    every inbound connection ever accepted kept its task (measured: 19 leaked after 20
    connect/disconnect cycles). This one waits for the yamux connection to close.
    """
    from libp2p.exceptions import BaseLibp2pError
    from libp2p.network.connection.raw_connection import RawConnection

    async def handle_inbound(read_write_closer: Any, maddr: Any, failure_event: Any) -> None:
        remote = swarm._build_remote_multiaddr(read_write_closer)
        if remote is not None and not await swarm.connection_gate.is_allowed(remote):
            await read_write_closer.close()
            return
        raw_conn = RawConnection(read_write_closer, False)
        try:
            muxed_conn = await swarm.upgrade_inbound_raw_conn(raw_conn, maddr)
        except (BaseLibp2pError, OSError) as e:
            # Failed handshakes are routine (scanners, plaintext dialers, wrong peers).
            log.debug("inbound connection on %s failed: %s", maddr, _root_cause(e))
            try:
                await raw_conn.close()
            except (BaseLibp2pError, OSError):
                pass
            return
        closed = getattr(muxed_conn, "event_closed", None)
        if closed is None:
            await swarm.manager.wait_finished()  # what libp2p does
        else:
            await closed.wait()

    _install(
        swarm,
        "_do_handle_inbound_connection",
        lambda _: handle_inbound,
        needs=("_build_remote_multiaddr", "connection_gate", "manager", "upgrade_inbound_raw_conn"),
    )


def _root_cause(e: BaseException) -> str:
    # libp2p wraps a refused dial three levels deep; the innermost message is the useful one.
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e) or type(e).__name__
