"""Narrow patches to py-libp2p 0.8.1 (pinned): whole Noise messages on the wire whoever is
cancelled, and less work per yamux frame, which is most of a warm exchange (DESIGN.md 6).

Each patch replaces one method, after checking that it is still there; if py-libp2p
changed, it logs a warning and leaves libp2p's method alone. ``apply()`` is idempotent. The
figures are CPU per warm /gate/http/1 exchange of a 400 B body on loopback at c=32, both
ends together unless said, with the patch on and off in the same conditions.
"""

from __future__ import annotations

__all__ = (
    "WRITE_STALL_TIMEOUT",
    "apply",
    "batch_window_updates",
    "buffer_tcp_reads",
    "read_buffered_data_bodies",
    "send_tcp_writes_whole",
    "write_small_frames_directly",
)

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

log = logging.getLogger("gate.p2p")

# A write that finds the socket full waits this long for room, then breaks the connection
# (yamux's own flow-control wait is 5 s).
WRITE_STALL_TIMEOUT: Final = 10.0
# What a buffered TCP read asks of the socket: a Noise message is at most 65,537 bytes.
_TCP_READ_SIZE: Final = 65536


def apply() -> None:
    send_tcp_writes_whole()
    buffer_tcp_reads()
    batch_window_updates()
    read_buffered_data_bodies()
    write_small_frames_directly()


def _install(
    cls: type, name: str, patch: Callable[[Any], Any], *, needs: tuple[str, ...] = ()
) -> None:
    """Replace ``cls.name`` by ``patch(original)``, once."""
    current = getattr(cls, name, None)
    if getattr(current, "_gate_patched", False):
        return
    absent = [n for n in (name, *needs) if not hasattr(cls, n)]
    if absent:
        log.warning("py-libp2p changed (no %s.%s): %s unpatched", cls.__name__, absent[0], name)
        return
    method = patch(current)
    method._gate_patched = True
    setattr(cls, name, method)


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

    _install(TrioTCPStream, "write", lambda _: write)


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

    _install(TrioTCPStream, "read", lambda _: read)


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
        needs=("_apply_autotune_epoch", "send_window_update"),
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

    _install(Yamux, "_read_data_body", patch)


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

    _install(yamux.YamuxStream, "write", patch)
