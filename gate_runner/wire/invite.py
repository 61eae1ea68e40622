"""Invites: a node's signed contact card (peer id, addresses, name, expiry) as one token to
copy, paste, put in a link fragment or a QR code. Pure: text and bytes in, checks, no I/O.

Layout of format v1 (all integers big-endian), then the text form:

    version   1 byte    1
    peer id   38 bytes  the libp2p peer id bytes: identity multihash of the Ed25519 key
    expires   8 bytes   unix seconds; the invite is refused from that second on
    name      1 byte length n (1..63), then n bytes of UTF-8
    addrs     1 byte count k (0..16), then k times: 2 bytes length m (1..256), m bytes UTF-8
    signature 64 bytes  Ed25519, by the key in the peer id, over SIGNING_CONTEXT + all above

    text:  "gate-invite:v1:" + base64url(all of the above), unpadded
    link:  <control url>/#invite=<text>

Binary rather than JSON: one encoding, so nothing to canonicalise, and a smaller QR code.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_TTL",
    "INVITE_PREFIX",
    "INVITE_VERSION",
    "MAX_ADDRS",
    "MAX_INVITE_TEXT",
    "MAX_TTL",
    "MIN_TTL",
    "SIGNING_CONTEXT",
    "Invite",
    "invite_link",
    "make_invite",
    "parse_invite",
    "signed_bytes",
)

import base64
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from gate_runner.errors import GateError
from gate_runner.identity import Identity, NodeId, normalise_peer_id, verify

INVITE_VERSION: Final = 1
INVITE_PREFIX: Final = "gate-invite:"
# Seven days: long enough for a friend to act on it over a week, short enough that the
# addresses in it (a home connection's IP, a laptop's network) are still likely to work.
DEFAULT_TTL: Final = 7 * 24 * 3600.0
MIN_TTL: Final = 60.0
# A month: past that, the addresses in it are stale more often than not.
MAX_TTL: Final = 30 * 24 * 3600.0
MAX_ADDRS: Final = 16
MAX_ADDR_LEN: Final = 256
MAX_NAME_LEN: Final = 63
# What the node's key signs is prefixed with this, so that an invite's signature can never
# pass for the signature of another message the same key signs (now or in a later protocol).
SIGNING_CONTEXT: Final = b"gate-invite/v1\n"

_SIG_LEN: Final = 64
_PEER_ID_LEN: Final = 38
# The largest v1 invite: fixed fields, the longest name, 16 of the longest addresses and the
# signature; as base64url text plus the prefix that is 5,755 characters. Anything longer is
# refused before it is decoded or even stripped, so a 5 MB paste costs nothing.
_MAX_BODY: Final = 1 + _PEER_ID_LEN + 8 + 1 + MAX_NAME_LEN + 1 + MAX_ADDRS * (2 + MAX_ADDR_LEN)
MAX_INVITE_TEXT: Final = 8192
_TEXT_PREFIX: Final = f"{INVITE_PREFIX}v{INVITE_VERSION}:"
_VERSION_RE: Final = re.compile(r"v([0-9]{1,6}):")
_LINK_MARK: Final = "invite="
_WHITESPACE_RE: Final = re.compile(r"\s+")
_ADDR_RE: Final = re.compile(r"/[\x21-\x7e]*")  # printable ASCII, no spaces
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")

_COPY_HINT: Final = "copy the whole gate-invite:v1:... text (or the link) again"


@dataclass(frozen=True, slots=True)
class Invite:
    """A checked invite. ``text`` is its token, the exact text that was signed and parsed."""

    node_id: NodeId
    name: str
    addrs: tuple[str, ...]
    expires_at: int  # unix seconds
    version: int
    text: str

    @property
    def peer_id(self) -> str:
        return self.node_id.peer_id

    @property
    def expires_at_rfc3339(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))


def signed_bytes(*, node_id: NodeId, name: str, addrs: Sequence[str], expires_at: int) -> bytes:
    """The bytes the node's key signs: SIGNING_CONTEXT, then the v1 layout up to the
    signature."""
    return SIGNING_CONTEXT + _body(node_id=node_id, name=name, addrs=addrs, expires_at=expires_at)


def _body(*, node_id: NodeId, name: str, addrs: Sequence[str], expires_at: int) -> bytes:
    name_bytes = name.encode("utf-8")
    parts = [
        bytes((INVITE_VERSION,)),
        node_id.peer_id_bytes(),
        expires_at.to_bytes(8, "big"),
        bytes((len(name_bytes),)),
        name_bytes,
        bytes((len(addrs),)),
    ]
    for addr in addrs:
        raw = addr.encode("utf-8")
        parts += [len(raw).to_bytes(2, "big"), raw]
    return b"".join(parts)


def make_invite(
    *, identity: Identity, name: str, addrs: Sequence[str], ttl: float, now: float
) -> Invite:
    """The node's invite: valid for ``ttl`` seconds from ``now``, signed by ``identity``."""
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise GateError(
            f"an invite may be valid for {MIN_TTL:.0f} s to {MAX_TTL / 86400:.0f} days, "
            f"not {ttl:g} s",
            hint="pick a ttl in that range (default 7 days)",
        )
    problem = _name_problem(name)
    if problem:
        raise GateError(f"cannot put the node's name in an invite: {problem}")
    if len(addrs) > MAX_ADDRS:
        raise GateError(f"an invite holds at most {MAX_ADDRS} addresses, not {len(addrs)}")
    for addr in addrs:
        problem = _addr_problem(addr, identity.node_id)
        if problem:
            raise GateError(f"cannot put the address {addr!r} in an invite: {problem}")
    expires_at = int(now + ttl)
    node_id = identity.node_id
    body = _body(node_id=node_id, name=name, addrs=addrs, expires_at=expires_at)
    signature = identity.sign(SIGNING_CONTEXT + body)
    token = base64.urlsafe_b64encode(body + signature).decode("ascii").rstrip("=")
    return Invite(
        node_id=node_id,
        name=name,
        addrs=tuple(addrs),
        expires_at=expires_at,
        version=INVITE_VERSION,
        text=_TEXT_PREFIX + token,
    )


def invite_link(base_url: str, invite: Invite) -> str:
    """The invite as a link into a node's web UI: in the fragment, which browsers never send
    to a server, so the link may point at any node's UI."""
    return f"{base_url.rstrip('/')}/#{_LINK_MARK}{invite.text}"


def parse_invite(
    text: str,
    now: float,
    *,
    own_peer_id: str,
    check_addr: Callable[[str], object] | None = None,
) -> Invite:
    """The invite in ``text`` (the token, or a link or message that carries it), checked:
    well formed, signed by the key of the peer id it names, not expired, not ours.

    ``check_addr`` may refuse an address by raising ValueError (the spec's multiaddr parser:
    this layer may not import it); without it, addresses get only the structural check.
    Raises GateError, whose message says what is wrong and whose hint says what to do.
    """
    if len(text) > MAX_INVITE_TEXT:
        raise GateError(
            f"that is {len(text):,} characters, far more than an invite "
            f"(at most {MAX_INVITE_TEXT:,})",
            hint="paste only the gate-invite:v1:... text, or the link that carries it",
        )
    token = _extract(text)
    raw = _decode(token)
    node_id, name, addrs, expires_at, signature, body = _split(raw)
    if not verify(node_id, SIGNING_CONTEXT + body, signature):
        raise GateError(
            f"the invite's signature does not match its content: it was changed after it "
            f"was made, or it was not made by the node it names ({node_id.peer_id})",
            hint="ask your friend for a new invite (`gate peers invite`), sent over a "
            "channel you trust",
        )
    invite = Invite(
        node_id=node_id,
        name=name,
        addrs=addrs,
        expires_at=expires_at,
        version=INVITE_VERSION,
        text=token,
    )
    if node_id.peer_id == normalise_peer_id(own_peer_id):
        raise GateError(
            f"this invite is this node's own ({node_id.peer_id}, {name!r})",
            hint="send it to the friend who should add this node; to add a friend, paste "
            "the invite their node made",
        )
    if now >= expires_at:
        raise GateError(
            f"the invite from {name!r} expired at {invite.expires_at_rfc3339} "
            f"({_ago(now - expires_at)} ago)",
            hint=f"ask {name} for a new one (`gate peers invite`)",
        )
    for addr in addrs:
        problem = _addr_problem(addr, node_id)
        if problem is None and check_addr is not None:
            try:
                check_addr(addr)
            except ValueError as e:
                problem = str(e)
        if problem:
            raise GateError(
                f"the invite from {name!r} holds an address this node cannot use: "
                f"{addr!r}: {problem}",
                hint=f"ask {name} to fix spec.listen.p2p and make a new invite",
            )
    return invite


def _extract(text: str) -> str:
    """The token in ``text``: the text itself, or what follows ``invite=`` in a link."""
    # Chat clients wrap long text; a token holds no whitespace, so none of it is meaningful.
    text = _WHITESPACE_RE.sub("", text)
    if not text:
        raise GateError("no invite given", hint="paste the gate-invite:v1:... text or its link")
    mark = text.rfind(_LINK_MARK)
    if mark >= 0 and not text.startswith(INVITE_PREFIX):
        text = unquote(text[mark + len(_LINK_MARK) :].split("&", 1)[0])
    if not text.startswith(INVITE_PREFIX):
        raise GateError("not a Gate invite: it should start with gate-invite:v1:", hint=_COPY_HINT)
    version = _VERSION_RE.match(text, len(INVITE_PREFIX))
    if version is None:
        raise GateError(
            "not a Gate invite: gate-invite: should be followed by its version (v1:)",
            hint=_COPY_HINT,
        )
    if int(version.group(1)) != INVITE_VERSION:
        raise GateError(
            f"this is a version {int(version.group(1))} invite; this gate reads version "
            f"{INVITE_VERSION}",
            hint="upgrade gate on this node, or ask for an invite from a gate of the same version",
        )
    return text


def _decode(token: str) -> bytes:
    data = token[len(_TEXT_PREFIX) :].rstrip("=")  # padding is optional in base64url
    if not _B64URL_RE.fullmatch(data):
        raise GateError(
            "the invite is damaged: it holds characters base64url does not use",
            hint=_COPY_HINT,
        )
    # A cut that ends mid-byte: 1 character past a 4-character group carries no whole byte,
    # and other cuts leave bits over that a whole invite never has.
    raw = b"" if len(data) % 4 == 1 else base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != data:
        raise GateError(
            "the invite is cut short: its text ends in the middle of a byte", hint=_COPY_HINT
        )
    return raw


def _split(raw: bytes) -> tuple[NodeId, str, tuple[str, ...], int, bytes, bytes]:
    """Cut the v1 layout; a wrong length anywhere means a damaged or truncated invite."""
    reader = _Reader(raw[:-_SIG_LEN] if len(raw) > _SIG_LEN else b"")
    if len(raw) > _MAX_BODY + _SIG_LEN:
        raise GateError("the invite is damaged: longer than a v1 invite can be", hint=_COPY_HINT)
    signature = raw[-_SIG_LEN:]
    version = reader.take(1)[0]
    if version != INVITE_VERSION:
        raise GateError(
            f"the invite is damaged: its text says version {INVITE_VERSION} but its "
            f"content says {version}",
            hint=_COPY_HINT,
        )
    try:
        node_id = NodeId.from_peer_id_bytes(reader.take(_PEER_ID_LEN))
    except ValueError as e:
        raise GateError(
            "the invite is damaged: it does not hold an Ed25519 peer id", hint=_COPY_HINT
        ) from e
    expires_at = int.from_bytes(reader.take(8), "big")
    name = reader.text(reader.take(1)[0], "name")
    problem = _name_problem(name)
    if problem:
        raise GateError(f"the invite is damaged: its name is unusable: {problem}", hint=_COPY_HINT)
    count = reader.take(1)[0]
    if count > MAX_ADDRS:
        raise GateError(
            f"the invite is damaged: it claims {count} addresses (at most {MAX_ADDRS})",
            hint=_COPY_HINT,
        )
    addrs = tuple(
        reader.text(int.from_bytes(reader.take(2), "big"), "address") for _ in range(count)
    )
    if reader.left:
        raise GateError(
            f"the invite is damaged: {reader.left} bytes follow its last field", hint=_COPY_HINT
        )
    return node_id, name, addrs, expires_at, signature, reader.data


class _Reader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.offset

    def take(self, n: int) -> bytes:
        if n > self.left:
            raise GateError(
                "the invite is cut short: it ends in the middle of a field", hint=_COPY_HINT
            )
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def text(self, n: int, what: str) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise GateError(
                f"the invite is damaged: its {what} is not UTF-8 text", hint=_COPY_HINT
            ) from e


def _name_problem(name: str) -> str | None:
    # The node's metadata.name, which the schema keeps to a DNS label; the spec checks the
    # name again when the peer is added under it, so this only bounds what is carried.
    size = len(name.encode("utf-8"))
    if not 1 <= size <= MAX_NAME_LEN:
        return f"it is {size} bytes (1 to {MAX_NAME_LEN})"
    if not name.isprintable():
        return "it holds control characters"
    return None


def _addr_problem(addr: str, node_id: NodeId) -> str | None:
    """Structural checks only (the spec's parser does the rest): bounded printable text
    that looks like a multiaddr and names no other peer."""
    if not 1 <= len(addr.encode("utf-8")) <= MAX_ADDR_LEN:
        return f"an address is 1 to {MAX_ADDR_LEN} bytes"
    if not _ADDR_RE.fullmatch(addr):
        return "not a multiaddr (they look like /ip4/203.0.113.7/tcp/41145)"
    parts = addr.split("/")
    for proto, value in zip(parts, parts[1:], strict=False):
        if proto in ("p2p", "ipfs"):
            try:
                named = NodeId.parse(value)
            except ValueError:
                return f"/{proto}/ is followed by {value!r}, which is not a peer id"
            if named != node_id:
                return f"it names another peer ({named.peer_id}), not the invite's"
    return None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
