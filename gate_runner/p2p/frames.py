"""Length-prefixed frames on a byte stream: a 4-byte big-endian length, then the payload.

A zero-length frame ends a direction (DESIGN.md section 6). Nothing here imports libp2p.
"""

from __future__ import annotations

__all__ = (
    "EndOfStream",
    "FrameError",
    "FrameStream",
    "ReadBuffer",
    "encode_frame",
    "read_frame",
    "read_json",
    "write_frame",
    "write_json",
)

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from gate_runner.errors import GateError

_HEADER: Final = 4
_MAX_LENGTH: Final = 2**32 - 1


class FrameError(GateError):
    """Raised when the remote sends a malformed frame: a length over the cap, a frame cut
    short by the end of the stream, or a payload that is not the expected JSON object.

    The stream is out of sync after this, so the caller resets it.
    """


class EndOfStream(GateError):
    """Raised by ``read_frame`` when the stream ends cleanly before the first byte of a frame.

    Between exchanges that is how the remote says it is done with a kept-alive stream.
    """


class FrameStream(Protocol):
    """What frames are read from and written to (``P2PStream``, or a TCP stream in the bench)."""

    async def read_exactly(self, n: int) -> bytes:
        """Return exactly ``n`` bytes, or fewer (maybe none) only if the stream ended first."""
        ...

    async def write(self, data: bytes) -> None: ...


class ReadBuffer:
    """Exact reads on top of a stream whose reads may return fewer bytes than asked.

    libp2p's ``read(n)`` returns what yamux has buffered, which can be less than ``n``. We read
    whatever is available and keep the surplus for the next frame: one read per batch of frames
    rather than two per frame. The buffer lives as long as the stream, since kept-alive streams
    carry many exchanges.
    """

    __slots__ = ("_buf", "_eof", "_receive")

    def __init__(self, receive: Callable[[], Awaitable[bytes]]) -> None:
        self._receive = receive  # returns b"" at the end of the stream
        self._buf = bytearray()
        self._eof = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    async def fill(self) -> bool:
        """Read once from the stream into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        data = await self._receive()
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def read_some(self) -> bytes:
        """Buffered bytes if any, else one read from the stream; b"" at the end of the stream."""
        if not self._buf and not await self.fill():
            return b""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not await self.fill():
                break
        data = bytes(self._buf[:n])
        # Deleting a bytearray's prefix moves its start pointer; it does not copy the rest.
        del self._buf[:n]
        return data


def encode_frame(data: bytes) -> bytes:
    """One frame as bytes, for writers that send several frames in one write."""
    if len(data) > _MAX_LENGTH:
        raise ValueError(f"a frame holds at most {_MAX_LENGTH} bytes, got {len(data)}")
    return len(data).to_bytes(_HEADER, "big") + data


async def write_frame(stream: FrameStream, data: bytes) -> None:
    """Write one frame; ``b""`` writes the zero frame that ends this direction."""
    # One write, not two: each write is a yamux frame and a Noise message of its own.
    await stream.write(encode_frame(data))


async def read_frame(stream: FrameStream, *, max_size: int) -> bytes:
    """Read one frame's payload; ``b""`` is the zero frame that ends the remote's direction.

    Raises ``EndOfStream`` if the stream ends before the frame starts, and ``FrameError`` if
    the length is over ``max_size`` or the stream ends inside the frame.
    """
    header = await stream.read_exactly(_HEADER)
    if not header:
        raise EndOfStream("the stream ended")
    if len(header) < _HEADER:
        raise FrameError(f"the stream ended inside a frame header ({len(header)} of 4 bytes)")
    length = int.from_bytes(header, "big")
    if length > max_size:
        # Refused before reading the payload, so a hostile length costs us nothing.
        raise FrameError(f"frame of {length} bytes is over the {max_size}-byte cap")
    if not length:
        return b""
    payload = await stream.read_exactly(length)
    if len(payload) < length:
        raise FrameError(f"the stream ended inside a frame ({len(payload)} of {length} bytes)")
    return payload


async def write_json(stream: FrameStream, obj: dict[str, Any]) -> None:
    await write_frame(stream, json.dumps(obj, separators=(",", ":")).encode())


async def read_json(stream: FrameStream, *, max_size: int) -> dict[str, Any]:
    """Read one frame holding a JSON object; ``FrameError`` if it holds anything else."""
    payload = await read_frame(stream, max_size=max_size)
    try:
        obj = json.loads(payload)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise FrameError(f"frame is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FrameError(f"frame holds a JSON {type(obj).__name__}, not an object")
    return obj
