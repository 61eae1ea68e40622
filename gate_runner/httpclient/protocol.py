"""HTTP/1.1 on the wire for the client: request heads out; response heads and bodies
(Content-Length, chunked, or up to the close) in. No I/O here, and nothing lenient: what
cannot be framed exactly is refused, since a guess is how responses get smuggled.
"""

from __future__ import annotations

__all__ = (
    "MAX_CHUNK_LINE",
    "MAX_HEAD",
    "Body",
    "ChunkedBody",
    "CloseDelimitedBody",
    "LengthBody",
    "ProtocolError",
    "ResponseHead",
    "parse_head",
    "request_lines",
)

import re
from collections.abc import Iterable
from dataclasses import dataclass

# A response head (status line and headers) or a block of chunked trailers may take this
# much; more is refused rather than buffered without end. h11's cap is 16 KiB; hosted APIs
# send long cookie and policy headers, hence more.
MAX_HEAD = 64 * 1024
# A chunk-size line, extensions included. Sizes themselves are at most 16 hex digits.
MAX_CHUNK_LINE = 4096

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# A field value without control characters (tab aside), and without white space at either
# end, which the next hop might trim differently.
_VALUE = rb"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
_TOKEN_RE = re.compile(_TOKEN)
_VALUE_RE = re.compile(_VALUE)
_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
_STATUS_LINE = rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n"
_HEADER_LINES = rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*"
# A whole head in one pass: the status line, then header lines that each hold a name, a
# colon and a value without control characters. That refuses bare CR or LF, NUL, white
# space before a colon and obs-fold continuation lines (RFC 9112 5.2 lets a gateway refuse
# those), and makes splitting the lines at CRLF and at their first colon exact.
_HEAD = re.compile(_STATUS_LINE + b"(" + _HEADER_LINES + b")")
_STATUS_LINE_RE = re.compile(_STATUS_LINE)
_HEADER_LINES_RE = re.compile(_HEADER_LINES)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?")
_DIGITS = re.compile(rb"[0-9]{1,18}")


class ProtocolError(Exception):
    """Raised when the peer's bytes are not HTTP/1.1 this client can frame exactly."""


# -- requests --------------------------------------------------------------------------------


def request_lines(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request line and header lines, each ending in CRLF; the caller adds the framing
    header and the empty line. ValueError on anything that could split a line or a header
    (CR, LF, a space in a name or the target)."""
    if not _TOKEN_RE.fullmatch(method):
        raise ValueError(f"bad method {method!r}")
    if not _TARGET_RE.fullmatch(target):
        raise ValueError(f"bad request target {target!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN_RE.fullmatch(name):
            raise ValueError(f"bad header name {name!r}")
        if not _VALUE_RE.fullmatch(value):
            raise ValueError(f"bad value for header {name.decode('latin-1')}: {value!r}")
        lines += (name, b": ", value, b"\r\n")
    return b"".join(lines)


# -- response heads --------------------------------------------------------------------------


@dataclass(slots=True)
class ResponseHead:
    """A parsed response head, and the decoder for the body that follows it."""

    status: int
    reason: bytes
    http_version: bytes  # b"1.1" or b"1.0"
    headers: list[tuple[bytes, bytes]]  # names lowercased, in order
    body: Body
    keep_alive: bool  # the server will take another request on this connection


def parse_head(buf: bytearray, *, head_request: bool = False) -> ResponseHead | None:
    """Take one response head off the front of ``buf``, with the reader for its body.

    None means the head is not complete yet (nothing is consumed). Informational (1xx)
    responses are returned too; the caller skips them. ``head_request``: the request was
    HEAD, so no body follows whatever the headers say.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise ProtocolError(f"the response head is over {MAX_HEAD} bytes")
        if b"\n\n" in buf:
            raise ProtocolError("the response head uses bare LF line endings")
        return None
    if end > MAX_HEAD:
        raise ProtocolError(f"the response head is over {MAX_HEAD} bytes")
    head = bytes(buf[: end + 2])  # the last header line keeps its CRLF
    del buf[: end + 4]
    match = _HEAD.fullmatch(head)
    if match is None:
        if _STATUS_LINE_RE.match(head) is None:
            line = head[: head.find(b"\r\n")]
            raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
        raise ProtocolError("malformed header line (bare CR or LF, control byte, or folding)")
    minor, code, reason, lines = match.groups()
    status = int(code)
    headers: list[tuple[bytes, bytes]] = []
    lengths: list[bytes] = []
    codings: list[bytes] = []
    close = minor == b"0"  # HTTP/1.0: no keep-alive negotiation here, one response
    for line in lines[:-2].split(b"\r\n") if lines else ():
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        headers.append((name, value))
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
        elif name == b"connection" and not close:
            close = b"close" in _tokens(value)
    result = ResponseHead(status, reason or b"", b"1." + minor, headers, _NO_BODY, not close)
    if status < 200:
        if status == 101:
            raise ProtocolError("the server switched protocols, which was not asked for")
        return result
    framing = _framing(lengths, codings, http_10=minor == b"0")
    if head_request or status in (204, 304):
        return result
    if isinstance(framing, int):
        result.body = LengthBody(framing) if framing else _NO_BODY
    elif framing == "chunked":
        result.body = ChunkedBody()
    else:
        result.body = CloseDelimitedBody()
        result.keep_alive = False
    return result


def _framing(lengths: list[bytes], codings: list[bytes], *, http_10: bool) -> int | str:
    """The body's framing from its headers' values: a length, "chunked", or "close"."""
    if codings:
        # Both headers is the classic smuggling set-up (RFC 9112 6.3 says TE wins, but a
        # hop that read CL would disagree with us about where the response ends).
        if lengths:
            raise ProtocolError("both Content-Length and Transfer-Encoding in one response")
        if http_10:
            raise ProtocolError("Transfer-Encoding in an HTTP/1.0 response")
        coding = _tokens(b",".join(codings))
        if coding != [b"chunked"]:
            listed = b", ".join(coding).decode("latin-1")
            raise ProtocolError(f"unsupported Transfer-Encoding {listed!r} (only chunked)")
        return "chunked"
    if not lengths:
        return "close"
    # RFC 9110 8.6: repeated values ("42, 42", or the header twice) are one length.
    if len(lengths) == 1 and b"," not in lengths[0]:
        length = lengths[0]
    else:
        values = {value.strip(b" \t") for value in b",".join(lengths).split(b",")}
        if len(values) > 1:
            raise ProtocolError("conflicting Content-Length values")
        (length,) = values
    if not _DIGITS.fullmatch(length):
        raise ProtocolError(f"bad Content-Length {length[:40]!r}")
    return int(length)


def _tokens(value: bytes) -> list[bytes]:
    """A comma-separated header value as lowercased tokens (RFC 9110 5.6.1)."""
    return [token.strip(b" \t") for token in value.lower().split(b",")]


# -- bodies ----------------------------------------------------------------------------------


class Body:
    """Decodes one response body from the connection's buffer: ``read`` takes what is
    there, ``done`` says the body is complete, ``eof`` says the server closed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False

    def read(self, buf: bytearray) -> bytes:
        """The body bytes decodable from ``buf`` now (consumed from it); b"" if none yet."""
        return b""

    def eof(self) -> None:
        """The server closed the connection. That completes only a close-delimited body;
        for any other, ``done`` stays False: the response was cut short."""


class _NoBody(Body):
    __slots__ = ()

    def __init__(self) -> None:
        self.done = True


_NO_BODY = _NoBody()


class LengthBody(Body):
    __slots__ = ("remaining",)

    def __init__(self, length: int) -> None:
        self.done = False
        self.remaining = length

    def read(self, buf: bytearray) -> bytes:
        if len(buf) <= self.remaining:
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[: self.remaining])
            del buf[: self.remaining]
        self.remaining -= len(data)
        self.done = not self.remaining
        return data


class CloseDelimitedBody(Body):
    """A body without length or chunks: it ends when the server closes the connection."""

    __slots__ = ()

    def read(self, buf: bytearray) -> bytes:
        data = bytes(buf)
        buf.clear()
        return data

    def eof(self) -> None:
        self.done = True


class ChunkedBody(Body):
    """Chunked transfer coding: sizes in strict hex, chunk extensions ignored, trailers
    checked like headers and dropped. Every chunk the buffer holds is joined in one read."""

    __slots__ = ("_in_chunk", "_trailer_bytes")

    def __init__(self) -> None:
        self.done = False
        self._in_chunk = -1  # bytes left in the current chunk's data; -1: at a size line
        self._trailer_bytes = -1  # -1 until the last chunk; then the trailer bytes seen

    def read(self, buf: bytearray) -> bytes:
        parts: list[bytes] = []
        while not self.done:
            if self._trailer_bytes >= 0:
                self._read_trailers(buf)
                break
            if self._in_chunk < 0:
                size = self._read_size(buf)
                if size is None:
                    break
                if size == 0:
                    self._trailer_bytes = 0
                    continue
                self._in_chunk = size
            # Chunk data, then its CRLF.
            take = min(self._in_chunk, len(buf))
            if take:
                parts.append(bytes(buf[:take]))
                del buf[:take]
                self._in_chunk -= take
            if self._in_chunk or len(buf) < 2:
                break
            if buf[:2] != b"\r\n":
                raise ProtocolError("chunk data is not followed by CRLF")
            del buf[:2]
            self._in_chunk = -1
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def _read_size(self, buf: bytearray) -> int | None:
        end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
        if end < 0:
            if len(buf) > MAX_CHUNK_LINE:
                raise ProtocolError(f"a chunk-size line is over {MAX_CHUNK_LINE} bytes")
            return None
        line = _CHUNK_SIZE.fullmatch(buf, 0, end)
        if line is None:
            raise ProtocolError(f"bad chunk size line {bytes(buf[:end][:40])!r}")
        size = int(line.group(1), 16)
        del buf[: end + 2]
        return size

    def _read_trailers(self, buf: bytearray) -> None:
        # Trailer lines, then an empty line. Gate forwards none of them.
        while True:
            end = buf.find(b"\r\n")
            if end < 0:
                if self._trailer_bytes + len(buf) > MAX_HEAD:
                    raise ProtocolError(f"the chunked trailers are over {MAX_HEAD} bytes")
                return
            if end == 0:
                del buf[:2]
                self.done = True
                return
            if not _HEADER_LINES_RE.fullmatch(buf, 0, end + 2):
                raise ProtocolError("malformed trailer line")
            self._trailer_bytes += end + 2
            if self._trailer_bytes > MAX_HEAD:
                raise ProtocolError(f"the chunked trailers are over {MAX_HEAD} bytes")
            del buf[: end + 2]
