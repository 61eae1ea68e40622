"""The client's HTTP/1.1 framing on bytes alone: response heads, bodies and request heads,
with the malformed and ambiguous inputs a strict client must refuse."""

from __future__ import annotations

import pytest

from gate_runner.httpclient.protocol import (
    MAX_CHUNK_LINE,
    MAX_HEAD,
    ChunkedBody,
    CloseDelimitedBody,
    LengthBody,
    ProtocolError,
    ResponseHead,
    parse_head,
    request_lines,
)


def head_of(data: bytes, *, head_request: bool = False) -> tuple[ResponseHead, bytearray]:
    buf = bytearray(data)
    head = parse_head(buf, head_request=head_request)
    assert head is not None
    return head, buf


def read_all(body: ChunkedBody | LengthBody, data: bytes, *, step: int) -> bytes:
    """Feed ``data`` ``step`` bytes at a time, as the network might, reading after each."""
    buf = bytearray()
    out = []
    for at in range(0, len(data), step):
        buf += data[at : at + step]
        out.append(body.read(buf))
    return b"".join(out)


# -- response heads --------------------------------------------------------------------------


def test_a_head_with_a_length_is_parsed_and_consumed() -> None:
    head, buf = head_of(
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nX-Empty:\r\nX-Padded: \t a  b \t\r\n\r\n{}next"
    )
    assert (head.status, head.reason, head.http_version) == (200, b"OK", b"1.1")
    assert head.headers == [
        (b"server", b"nginx"),
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
        (b"x-empty", b""),
        (b"x-padded", b"a  b"),
    ]
    assert head.keep_alive
    assert isinstance(head.body, LengthBody)
    assert head.body.read(buf) == b"{}" and head.body.done
    assert buf == b"next"  # what follows the body is the caller's to judge


@pytest.mark.parametrize("cut", [0, 1, 9, 17, 30, 31, 32])
def test_an_incomplete_head_consumes_nothing(cut: int) -> None:
    whole = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    buf = bytearray(whole[:cut])
    assert parse_head(buf) is None
    assert buf == whole[:cut]
    buf += whole[cut:]
    head = parse_head(buf)
    assert head is not None and head.body.done and not buf


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        (b"HTTP/1.1 204 No Content", 204, b"No Content"),
        (b"HTTP/1.1 200 ", 200, b""),
        (b"HTTP/1.1 200", 200, b""),  # no reason, not even its space: common enough
        (b"HTTP/1.1 503 Service \tUnavailable", 503, b"Service \tUnavailable"),
    ],
)
def test_status_lines(line: bytes, status: int, reason: bytes) -> None:
    head, _ = head_of(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert (head.status, head.reason) == (status, reason)


def test_connection_close_and_http_10_end_keep_alive() -> None:
    for data in (
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    ):
        head, _ = head_of(data)
        assert not head.keep_alive and head.body.done


def test_a_body_without_length_or_chunks_runs_to_the_close() -> None:
    head, buf = head_of(b"HTTP/1.1 200 OK\r\n\r\nsome")
    assert isinstance(head.body, CloseDelimitedBody) and not head.keep_alive
    assert head.body.read(buf) == b"some" and not head.body.done
    head.body.eof()
    assert head.body.done


def test_a_cut_short_length_body_is_not_done_at_eof() -> None:
    head, buf = head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert head.body.read(buf) == b"abc"
    head.body.eof()
    assert not head.body.done


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 204 No Content\r\nContent-Length: 12\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_no_body_after_204_and_304_whatever_the_headers(data: bytes) -> None:
    head, _ = head_of(data)
    assert head.body.done and head.keep_alive


def test_no_body_after_a_head_request() -> None:
    head, _ = head_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head_request=True)
    assert head.body.done and head.keep_alive


def test_informational_heads_are_returned_for_the_caller_to_skip() -> None:
    head, buf = head_of(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    assert head.status == 100
    final = parse_head(buf)
    assert final is not None and final.status == 200


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", id="not-http"),
        pytest.param(b"HTTP/2.0 200 OK\r\n\r\n", id="http-2"),
        pytest.param(b"http/1.1 200 OK\r\n\r\n", id="lowercase-version"),
        pytest.param(b"HTTP/1.1 20 OK\r\n\r\n", id="two-digit-status"),
        pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", id="four-digit-status"),
        pytest.param(b"HTTP/1.1  200 OK\r\n\r\n", id="double-space"),
        pytest.param(b"HTTP/1.1 200 O\x00K\r\n\r\n", id="nul-in-reason"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", id="unasked-upgrade"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n", id="no-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\n: empty-name\r\n\r\n", id="empty-name"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello", id="space-before-colon"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", id="space-in-name"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", id="obs-fold"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\nContent-Length: 5\r\n\r\nhello", id="bare-lf"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\rContent-Length: 5\r\n\r\nhello", id="bare-cr"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n", id="nul-in-value"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", id="del-in-value"),
    ],
)
def test_malformed_heads_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(bytearray(data))


def test_bare_lf_line_endings_are_refused_without_waiting_for_more() -> None:
    with pytest.raises(ProtocolError, match="bare LF"):
        parse_head(bytearray(b"HTTP/1.1 200 OK\nContent-Length: 0\n\n"))


def test_a_head_over_the_cap_is_refused() -> None:
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"x" * MAX_HEAD
    with pytest.raises(ProtocolError, match="over"):
        parse_head(bytearray(endless))
    with pytest.raises(ProtocolError, match="over"):
        parse_head(bytearray(endless + b"\r\n\r\n"))
    # Just under the cap is fine.
    filler = b"x" * (MAX_HEAD - 100)
    head, _ = head_of(b"HTTP/1.1 200 OK\r\nX-Filler: " + filler + b"\r\nContent-Length: 0\r\n\r\n")
    assert head.headers[0] == (b"x-filler", filler)


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"Content-Length: 5\r\nContent-Length: 5\r\n", id="repeated"),
        pytest.param(b"Content-Length: 5, 5\r\n", id="listed"),
        pytest.param(b"Content-Length:5\r\n", id="no-space"),
        pytest.param(b"content-LENGTH: 00005\r\n", id="leading-zeros"),
    ],
)
def test_lengths_that_agree_are_one_length(headers: bytes) -> None:
    head, buf = head_of(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\nhello")
    assert head.body.read(buf) == b"hello" and head.body.done


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "both"),
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "both"),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", "conflicting"),
        (b"Content-Length: 5, 6\r\n", "conflicting"),
        (b"Content-Length: 5,\r\n", "conflicting"),
        (b"Content-Length: +5\r\n", "bad Content-Length"),
        (b"Content-Length: -1\r\n", "bad Content-Length"),
        (b"Content-Length: 0x10\r\n", "bad Content-Length"),
        (b"Content-Length: 5 5\r\n", "bad Content-Length"),
        (b"Content-Length: \r\n", "bad Content-Length"),
        (b"Content-Length: 1234567890123456789\r\n", "bad Content-Length"),
        (b"Transfer-Encoding: gzip\r\n", "unsupported"),
        (b"Transfer-Encoding: gzip, chunked\r\n", "unsupported"),
        (b"Transfer-Encoding: chunked, chunked\r\n", "unsupported"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "unsupported"),
        (b"Transfer-Encoding: identity\r\n", "unsupported"),
        (b"Transfer-Encoding: \r\n", "unsupported"),
    ],
)
def test_ambiguous_framing_is_refused(headers: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_head(bytearray(b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n"))


def test_transfer_encoding_in_http_10_is_refused() -> None:
    with pytest.raises(ProtocolError, match="HTTP/1.0"):
        parse_head(bytearray(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))


def test_chunked_is_case_and_space_insensitive() -> None:
    head, _ = head_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n")
    assert isinstance(head.body, ChunkedBody)


# -- bodies ----------------------------------------------------------------------------------

CHUNKED = b'5\r\nhello\r\n1;ext="a b"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n'


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(CHUNKED)])
def test_chunked_bodies_decode_however_they_are_split(step: int) -> None:
    body = ChunkedBody()
    assert read_all(body, CHUNKED, step=step) == b"hello 0123456789"
    assert body.done


def test_chunks_that_arrived_together_come_out_as_one() -> None:
    body = ChunkedBody()
    buf = bytearray(CHUNKED + b"HTTP/1.1 200 OK")
    assert body.read(buf) == b"hello 0123456789"
    assert body.done and buf == b"HTTP/1.1 200 OK"


def test_sizes_in_any_hex_case_with_leading_zeros() -> None:
    body = ChunkedBody()
    buf = bytearray(b"0000b\r\n" + b"x" * 11 + b"\r\nA\r\n" + b"y" * 10 + b"\r\n000\r\n\r\n")
    assert body.read(buf) == b"x" * 11 + b"y" * 10 and body.done


def test_trailers_are_read_and_dropped() -> None:
    body = ChunkedBody()
    data = b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: two\r\n\r\n"
    assert read_all(body, data, step=4) == b"abc"
    assert body.done


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"zz\r\n", id="not-hex"),
        pytest.param(b"\r\n", id="empty-size"),
        pytest.param(b" 5\r\nhello\r\n", id="leading-space"),
        pytest.param(b"5 x\r\nhello\r\n", id="junk-after-size"),
        pytest.param(b"-5\r\n", id="negative"),
        pytest.param(b"0x5\r\nhello\r\n", id="0x-prefix"),
        pytest.param(b"1" + b"0" * 16 + b"\r\n", id="17-hex-digits"),
        pytest.param(b"5\r\nhelloXX", id="no-crlf-after-data"),
        pytest.param(b"5;a\x00b\r\nhello\r\n", id="nul-in-extension"),
        pytest.param(b"5\nhello\r\n0\r\n\r\n" + b"x" * MAX_CHUNK_LINE, id="bare-lf-size-line"),
        pytest.param(b"0\r\nbad trailer\r\n\r\n", id="bad-trailer"),
        pytest.param(b"0\r\nX: a\rb\r\n\r\n", id="bare-cr-in-trailer"),
    ],
)
def test_malformed_chunks_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        ChunkedBody().read(bytearray(data))


def test_a_chunk_size_line_over_the_cap_is_refused() -> None:
    body = ChunkedBody()
    assert body.read(bytearray(b"5;" + b"e" * (MAX_CHUNK_LINE - 10))) == b""
    with pytest.raises(ProtocolError, match="chunk-size line"):
        body.read(bytearray(b"5;" + b"e" * MAX_CHUNK_LINE))


def test_trailers_over_the_cap_are_refused() -> None:
    body = ChunkedBody()
    trailer = b"X-Big: " + b"t" * 1000 + b"\r\n"
    with pytest.raises(ProtocolError, match="trailers"):
        read_all(body, b"0\r\n" + trailer * (MAX_HEAD // len(trailer) + 1), step=4096)


def test_a_length_body_stops_at_its_length() -> None:
    body = LengthBody(5)
    assert read_all(body, b"hel", step=1) == b"hel" and not body.done
    buf = bytearray(b"loHTTP")
    assert body.read(buf) == b"lo" and body.done and buf == b"HTTP"


# -- request heads ---------------------------------------------------------------------------


def test_request_lines_are_built_as_given() -> None:
    lines = request_lines(
        b"POST",
        b"/v1/chat/completions?x=1",
        [(b"Host", b"127.0.0.1:8080"), (b"X-Empty", b""), (b"X-Tab", b"a\tb \xe9")],
    )
    assert lines == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        b"X-Empty: \r\nX-Tab: a\tb \xe9\r\n"
    )


@pytest.mark.parametrize(
    ("method", "target", "header"),
    [
        (b"GET", b"/", (b"X", b"a\r\nInjected: yes")),
        (b"GET", b"/", (b"X", b"a\nb")),
        (b"GET", b"/", (b"X", b"a\x00b")),
        (b"GET", b"/", (b"X", b" padded")),
        (b"GET", b"/", (b"X", b"padded ")),
        (b"GET", b"/", (b"Bad Name", b"x")),
        (b"GET", b"/", (b"", b"x")),
        (b"GET", b"/", (b"X:Y", b"x")),
        (b"GE T", b"/", (b"X", b"x")),
        (b"GET", b"/a b", (b"X", b"x")),
        (b"GET", b"/\r\nX: y", (b"X", b"x")),
        (b"GET", b"", (b"X", b"x")),
    ],
)
def test_a_request_that_could_split_a_line_is_refused(
    method: bytes, target: bytes, header: tuple[bytes, bytes]
) -> None:
    with pytest.raises(ValueError):
        request_lines(method, target, [header])
