"""``P2PStream``: one libp2p stream to an authenticated peer, with libp2p's errors wrapped."""

from __future__ import annotations

__all__ = ("P2PStream", "StreamError", "StreamReset")

import logging
from typing import Any, Final

import anyio
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.stream.exceptions import StreamReset as _Libp2pStreamReset
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset

from gate_runner.errors import TransientError
from gate_runner.p2p.frames import ReadBuffer

log = logging.getLogger("gate.p2p")

# A reset or close is one small yamux frame; if the connection cannot take it within this
# long it is dead anyway, and the swarm resets every stream when it drops the connection.
_CLEANUP_TIMEOUT: Final = 2.0
# libp2p raises its own classes for I/O on a stream and OSError / trio errors from the socket
# below; all of them mean this stream can carry nothing more.
_IO_ERRORS: Final = (BaseLibp2pError, OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class StreamError(TransientError):
    """Raised when a P2P stream can no longer carry data: it was closed, or its connection
    dropped. A new stream (perhaps after reconnecting) may work, hence transient."""


class StreamReset(StreamError):
    """Raised when the remote reset the stream: it gave up on the exchange (a client that
    disconnected, a handler that failed) or its connection was torn down."""


class P2PStream:
    """A thin wrapper over a libp2p ``NetStream``.

    ``remote_peer_id`` is the peer id authenticated by the Noise handshake
    (``stream.muxed_conn.peer_id``), never a claim made inside the stream. Reads are buffered
    (``read_exactly``), so the frame functions in ``frames`` work on it directly.
    """

    __slots__ = ("_closed", "_reader", "_stream", "protocol", "remote_peer_id")

    def __init__(self, net_stream: Any, *, remote_peer_id: str, protocol: str) -> None:
        self._stream = net_stream
        self.remote_peer_id = remote_peer_id
        self.protocol = protocol
        self._reader = ReadBuffer(self._read_raw)
        self._closed = False

    async def _read_raw(self) -> bytes:
        try:
            # No size: yamux hands over everything it has buffered for this stream.
            data: bytes = await self._stream.read()
        except (StreamEOF, MuxedStreamEOF) as e:
            # yamux reports its connection closing as the end of each stream; that is no
            # FIN from the remote, and what it had sent but we had not read is gone.
            if self._connection_closed():
                raise StreamReset(f"the connection to {self.remote_peer_id} closed") from e
            return b""
        except (_Libp2pStreamReset, MuxedStreamReset) as e:
            raise StreamReset(f"peer {self.remote_peer_id} reset the {self.protocol} stream") from e
        except _IO_ERRORS as e:
            raise StreamError(f"{self.protocol} stream to {self.remote_peer_id} broke: {e}") from e
        return data

    def _connection_closed(self) -> bool:
        conn = getattr(self._stream, "muxed_conn", None)
        shutting_down = getattr(conn, "event_shutting_down", None)
        is_set = getattr(shutting_down, "is_set", None)
        return bool(getattr(conn, "is_closed", False) or (is_set is not None and is_set()))

    async def read(self) -> bytes:
        """Return the next bytes available; ``b""`` once the remote has closed its side."""
        return await self._reader.read_some()

    async def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, or fewer only if the remote closed its side first."""
        return await self._reader.read_exactly(n)

    async def wait_readable(self) -> bool:
        """Wait until bytes arrive (kept in the buffer); False once the remote closed its side.

        Raises ``StreamReset`` if the remote resets the stream meanwhile.
        """
        return self._reader.buffered > 0 or await self._reader.fill()

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` (cancellable: no cancel can cut a message on the encrypted
        connection below, see ``patches.send_tcp_writes_whole``)."""
        try:
            await self._stream.write(data)
        except (_Libp2pStreamReset, MuxedStreamReset) as e:
            raise StreamReset(f"peer {self.remote_peer_id} reset the {self.protocol} stream") from e
        except _IO_ERRORS as e:
            raise StreamError(f"{self.protocol} stream to {self.remote_peer_id} broke: {e}") from e

    async def close_write(self) -> None:
        """Half-close: the remote reads the end of the stream, we can still read its reply.

        yamux sends FIN for this; the stream cannot be written again, so kept-alive exchanges
        end a direction with a zero frame instead (``frames``).
        """
        try:
            await self._stream.close_write()
        except _IO_ERRORS as e:
            raise StreamError(f"{self.protocol} stream to {self.remote_peer_id} broke: {e}") from e

    async def reset(self) -> None:
        """Abort the stream both ways; the remote's next read or write raises. Never raises.

        Shielded: this runs on the way out of cancelled work, and an unsent reset would leave
        the remote waiting on a stream nobody reads, and leak libp2p's per-stream slot.
        """
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
            try:
                await self._stream.reset()
            except _IO_ERRORS as e:
                log.debug("resetting a stream to %s failed: %s", self.remote_peer_id, e)

    async def aclose(self) -> None:
        """Close gracefully (FIN), releasing libp2p's per-stream slot. Never raises."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
            try:
                await self._stream.close()
            except _IO_ERRORS as e:
                log.debug("closing a stream to %s failed: %s", self.remote_peer_id, e)

    @property
    def is_closed(self) -> bool:
        """True once closed or reset here, or once the remote closed or reset its side, or the
        connection closed: such a stream cannot carry another exchange.

        ``NetStream.is_closed`` alone misses a remote FIN or RST until the next read, so the
        yamux flags are checked too (with ``getattr``: they are not part of libp2p's interface).
        """
        if self._closed or bool(getattr(self._stream, "is_closed", False)):
            return True
        muxed = getattr(self._stream, "muxed_stream", None)
        if any(getattr(muxed, flag, False) for flag in ("closed", "recv_closed", "reset_received")):
            return True
        return self._connection_closed()

    def __repr__(self) -> str:
        return f"P2PStream({self.protocol} with {self.remote_peer_id})"
