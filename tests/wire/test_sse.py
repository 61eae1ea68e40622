"""Server-sent events: encoding, and the incremental parser against the same stream cut at
every point (line endings \\n, \\r\\n and \\r; comments; multi-line data)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_runner.wire.sse import DONE, SSEEvent, SSEParser, StreamEnd, encode_event, encode_json


def parse_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (("hello",), {}, b"data: hello\n\n"),
        ((b"{}",), {}, b"data: {}\n\n"),
        (("a\nb",), {}, b"data: a\ndata: b\n\n"),
        (("a\r\nb\rc",), {}, b"data: a\ndata: b\ndata: c\n\n"),
        (("",), {}, b"data: \n\n"),
        (("x",), {"event": "error"}, b"event: error\ndata: x\n\n"),
        (("x",), {"event": "e", "id": "7"}, b"event: e\nid: 7\ndata: x\n\n"),
    ],
)
def test_encode_event(args: tuple[bytes | str], kwargs: dict[str, str], expected: bytes) -> None:
    assert encode_event(*args, **kwargs) == expected


@pytest.mark.parametrize("field", ["event", "id"])
def test_encode_event_refuses_a_line_break_in_a_field(field: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("x", **{field: "a\nb"})


def test_encode_json_is_one_compact_line() -> None:
    out = encode_json({"a": "line\nbreak", "b": "é"})
    assert out.count(b"\n") == 2 and out.endswith(b"\n\n")
    assert json.loads(out[len(b"data: ") :]) == {"a": "line\nbreak", "b": "é"}
    assert parse_all([out]) == [SSEEvent(data='{"a":"line\\nbreak","b":"é"}')]


def test_done_is_the_openai_sentinel() -> None:
    assert parse_all([DONE]) == [SSEEvent(data="[DONE]")]


STREAM = (
    b"\xef\xbb\xbf"  # a BOM, skipped at the very start only
    b": keep-alive comment\n"
    b"data: first\n\n"
    b"event: error\r\n"
    b'data: {"error": 1}\r\n\r\n'
    b"data:no-space\rdata:  two spaces\r\r"
    b"id: 42\n"
    b"retry: 1500\n"
    b"data\n"
    b"data: line2\n\n"
    b"unknown: field\n"
    b"event: only-an-event\n\n"  # no data: nothing is dispatched
    b"data: \xc3\xa9t\xc3\xa9\n\n"
    b"data: unterminated"  # never ended by a blank line: dropped
)

EXPECTED = [
    SSEEvent(data="first"),
    SSEEvent(data='{"error": 1}', event="error"),
    SSEEvent(data="no-space\n two spaces"),
    SSEEvent(data="\nline2", id="42", retry=1500),
    SSEEvent(data="été", id="42"),  # the last event id carries over
]


def test_parser_whole_stream() -> None:
    parser = SSEParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.comments == 1
    assert parser.last_event_id == "42"


def test_parser_split_at_every_offset() -> None:
    for cut in range(len(STREAM) + 1):
        assert parse_all([STREAM[:cut], STREAM[cut:]]) == EXPECTED, f"cut at byte {cut}"


def test_parser_byte_by_byte() -> None:
    assert parse_all([bytes([b]) for b in STREAM]) == EXPECTED


@given(st.lists(st.integers(min_value=0), max_size=30))
def test_parser_any_chunking(cuts: list[int]) -> None:
    assert parse_all(split_at(STREAM, cuts)) == EXPECTED


def test_cr_then_lf_in_the_next_chunk_is_one_line_break() -> None:
    # A "\r" at the end of one chunk and "\n" at the start of the next must not
    # count as two line breaks, which would end the event early.
    chunks = [b"data: a\r", b"", b"\ndata: b\r", b"\n\r", b"\n"]
    assert parse_all(chunks) == [SSEEvent(data="a\nb")]


def test_bom_only_skipped_at_start() -> None:
    assert parse_all([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent(data="x")]
    # later, the same bytes are part of a field name, so the line is an unknown field
    assert parse_all([b"data: x\n\n\xef\xbb\xbfdata: y\n\n"]) == [SSEEvent(data="x")]


events = st.lists(
    st.tuples(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
        st.one_of(st.none(), st.text(st.characters(whitelist_categories=("L", "N")), min_size=1)),
    ),
    max_size=8,
)


@given(events, st.lists(st.integers(min_value=0), max_size=20))
def test_encode_then_parse_round_trips(
    pairs: list[tuple[str, str | None]], cuts: list[int]
) -> None:
    stream = b"".join(encode_event(data, event=event) for data, event in pairs)
    parsed = parse_all(split_at(stream, cuts))
    # encode_event splits on \r\n, \r and \n; the parser joins with \n
    expected = [
        SSEEvent(data=data.replace("\r\n", "\n").replace("\r", "\n"), event=event)
        for data, event in pairs
    ]
    assert parsed == expected


@pytest.mark.parametrize(
    ("chunks", "finished"),
    [
        ([b'data: {"choices":[{"finish_reason":null}]}\n\n'], False),
        ([b'data: {"choices":[{"finish_reason":"stop"}]}\n\n'], True),
        ([b'data: {"choices": [{"finish_reason": "length"}]}\n\n'], True),
        ([b"data: {}\n\n", b"data: [DONE]\n\n"], True),
        ([b'data: {"error":{"message":"x"}}\n\n'], True),
        # Markers cut between two chunks are still seen.
        ([b'data: {"choices":[{"finish_rea', b'son":"stop"}]}\n\n'], True),
        ([b"data: [DO", b"NE]\n\n"], True),
        ([b"data: [DO", b"", b"NE]\n\n"], True),
        ([b'data: {"x":"[DON'], False),
    ],
)
def test_stream_end_tells_an_ending_from_a_cut(chunks: list[bytes], finished: bool) -> None:
    end = StreamEnd()
    for chunk in chunks:
        end.feed(chunk)
    assert end.finished is finished
