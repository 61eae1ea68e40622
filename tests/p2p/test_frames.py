"""Frames on a real trio in-memory stream pair, whose reads return arbitrary short chunks."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import gate_runner.p2p
from gate_runner.errors import GateError
from gate_runner.p2p.frames import (
    EndOfStream,
    FrameError,
    ReadBuffer,
    encode_frame,
    read_frame,
    read_json,
    write_frame,
    write_json,
)

pytestmark = pytest.mark.anyio


class TrioFrames:
    """A FrameStream over one end of a trio stream pair."""

    def __init__(self, stream: trio.abc.Stream, *, chunk: int = 65536) -> None:
        self.stream = stream
        self.reader = ReadBuffer(lambda: stream.receive_some(chunk))

    async def read_exactly(self, n: int) -> bytes:
        return await self.reader.read_exactly(n)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)


def pair(*, chunk: int = 65536) -> tuple[TrioFrames, TrioFrames]:
    left, right = trio.testing.memory_stream_pair()
    return TrioFrames(left), TrioFrames(right, chunk=chunk)


def test_exports_are_a_tuple_of_real_names() -> None:
    assert isinstance(gate_runner.p2p.__all__, tuple)
    for name in gate_runner.p2p.__all__:
        assert hasattr(gate_runner.p2p, name), name


def test_frame_errors_are_gate_errors() -> None:
    assert issubclass(FrameError, GateError)
    assert issubclass(EndOfStream, GateError)


async def test_frames_round_trip_and_the_zero_frame_ends_a_direction() -> None:
    a, b = pair(chunk=3)  # the reader gets at most 3 bytes per read
    await write_frame(a, b"hello")
    await write_json(a, {"k": [1, 2]})
    await write_frame(a, b"")
    assert await read_frame(b, max_size=100) == b"hello"
    assert await read_json(b, max_size=100) == {"k": [1, 2]}
    assert await read_frame(b, max_size=100) == b""


@settings(max_examples=50, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20),
)
def test_any_split_of_the_bytes_gives_the_same_frames(
    payloads: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(p) for p in payloads) + encode_frame(b"")
    chunks: list[bytes] = []
    at, i = 0, 0
    while at < len(wire):
        size = cuts[i % len(cuts)]
        chunks.append(wire[at : at + size])
        at, i = at + size, i + 1
    feed = iter(chunks)

    async def receive() -> bytes:
        await trio.lowlevel.checkpoint()
        return next(feed, b"")

    class Chunked:
        reader = ReadBuffer(receive)

        async def read_exactly(self, n: int) -> bytes:
            return await self.reader.read_exactly(n)

        async def write(self, data: bytes) -> None:
            raise AssertionError("read only")

    async def main() -> list[bytes]:
        stream, got = Chunked(), []
        while frame := await read_frame(stream, max_size=1000):
            got.append(frame)
        with pytest.raises(EndOfStream):
            await read_frame(stream, max_size=1000)
        return got

    assert trio.run(main) == payloads


async def test_a_length_over_the_cap_is_refused_before_reading_the_payload() -> None:
    a, b = pair()
    await a.write((10_000_000).to_bytes(4, "big"))  # no payload follows: nothing is awaited
    with pytest.raises(FrameError, match="over the 1000-byte cap"):
        await read_frame(b, max_size=1000)


@pytest.mark.parametrize(
    ("wire", "match"),
    [
        (b"\x00\x00", "inside a frame header"),
        (b"\x00\x00\x00\x10abc", "inside a frame"),
    ],
)
async def test_a_truncated_frame_is_a_frame_error(wire: bytes, match: str) -> None:
    a, b = pair()
    await a.write(wire)
    await a.stream.aclose()
    with pytest.raises(FrameError, match=match):
        await read_frame(b, max_size=1000)


async def test_the_end_of_the_stream_between_frames_is_end_of_stream() -> None:
    a, b = pair()
    await write_frame(a, b"x")
    await a.stream.aclose()
    assert await read_frame(b, max_size=10) == b"x"
    with pytest.raises(EndOfStream):
        await read_frame(b, max_size=10)


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"null", b"\xff\xfe", b"{not json", b""])
async def test_read_json_wants_an_object(payload: bytes) -> None:
    a, b = pair()
    await write_frame(a, payload)
    with pytest.raises(FrameError):
        await read_json(b, max_size=100)


async def test_write_json_is_compact_json() -> None:
    a, b = pair()
    await write_json(a, {"a": 1, "b": "é"})
    assert json.loads(await read_frame(b, max_size=100)) == {"a": 1, "b": "é"}
