"""Invites: the v1 layout byte for byte, the round trip through text and links, and one test
per kind of bad input, each refused with a message that says what to do."""

from __future__ import annotations

import base64
import struct
import time

import pytest

from gate_runner.errors import GateError
from gate_runner.identity import Identity, NodeId, verify
from gate_runner.spec.multiaddr import parse_multiaddr
from gate_runner.wire.invite import (
    DEFAULT_TTL,
    MAX_INVITE_TEXT,
    SIGNING_CONTEXT,
    invite_link,
    make_invite,
    parse_invite,
    signed_bytes,
)

NOW = 1_800_000_000.0
ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))
ADDRS = ("/ip4/203.0.113.7/tcp/41145", "/dns4/alice.example/tcp/41145")


def _invite(**kw: object) -> str:
    args: dict[str, object] = {
        "identity": ALICE,
        "name": "alice",
        "addrs": ADDRS,
        "ttl": DEFAULT_TTL,
        "now": NOW,
    }
    args.update(kw)
    return make_invite(**args).text  # type: ignore[arg-type]


def _parse(text: str, *, now: float = NOW, own: Identity = BOB) -> object:
    return parse_invite(text, now, own_peer_id=own.node_id.peer_id, check_addr=parse_multiaddr)


def _body(
    *,
    version: int = 1,
    peer_id: bytes = ALICE.node_id.peer_id_bytes(),
    expires: int = int(NOW + DEFAULT_TTL),
    name: bytes = b"alice",
    addrs: tuple[bytes, ...] = tuple(a.encode() for a in ADDRS),
) -> bytes:
    """The v1 layout written out by hand, independently of the module under test."""
    out = struct.pack(">B", version) + peer_id + struct.pack(">Q", expires)
    out += struct.pack(">B", len(name)) + name + struct.pack(">B", len(addrs))
    for addr in addrs:
        out += struct.pack(">H", len(addr)) + addr
    return out


def _token(body: bytes, *, signer: Identity = ALICE, prefix: str = "gate-invite:v1:") -> str:
    signature = signer.sign(SIGNING_CONTEXT + body)
    return prefix + base64.urlsafe_b64encode(body + signature).decode().rstrip("=")


def _refused(text: str, *words: str, now: float = NOW, own: Identity = BOB) -> GateError:
    with pytest.raises(GateError) as caught:
        _parse(text, now=now, own=own)
    message = caught.value.message
    for word in words:
        assert word in message, message
    assert caught.value.hint, "every refusal says what to do"
    return caught.value


# -- the format -------------------------------------------------------------------------------


def test_the_signed_bytes_are_the_documented_layout() -> None:
    body = _body()
    assert (
        signed_bytes(
            node_id=ALICE.node_id, name="alice", addrs=ADDRS, expires_at=int(NOW + DEFAULT_TTL)
        )
        == SIGNING_CONTEXT + body
    )
    text = _invite()
    raw = base64.urlsafe_b64decode(text.removeprefix("gate-invite:v1:") + "==")
    assert raw[:-64] == body
    assert verify(ALICE.node_id, SIGNING_CONTEXT + body, raw[-64:])
    assert _token(body) == text  # Ed25519 is deterministic: one invite, one text


def test_an_invite_round_trips_with_its_fields() -> None:
    invite = parse_invite(_invite(), NOW + 60, own_peer_id=BOB.node_id.peer_id)
    assert invite.peer_id == ALICE.node_id.peer_id
    assert invite.name == "alice"
    assert invite.addrs == ADDRS
    assert invite.expires_at == int(NOW + DEFAULT_TTL)
    assert invite.version == 1


def test_an_invite_without_addresses_is_valid() -> None:
    invite = parse_invite(_invite(addrs=()), NOW, own_peer_id=BOB.node_id.peer_id)
    assert invite.addrs == ()


def test_the_peer_id_carries_the_key_that_verifies() -> None:
    """No key travels beside the id: the verifier recovers it from the peer id."""
    invite = parse_invite(_invite(), NOW, own_peer_id=BOB.node_id.peer_id)
    assert invite.node_id == NodeId.parse(ALICE.node_id.peer_id)
    assert invite.node_id.public_key == ALICE.node_id.public_key


def test_a_link_or_a_wrapped_paste_carries_the_invite() -> None:
    text = _invite()
    link = invite_link(
        "http://127.0.0.1:8145/",
        make_invite(identity=ALICE, name="alice", addrs=ADDRS, ttl=DEFAULT_TTL, now=NOW),
    )
    assert link == f"http://127.0.0.1:8145/#invite={text}"
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60))
    escaped = link.replace(":", "%3A").replace("http%3A", "http:")
    for pasted in (link, f"  {text}\n", wrapped, escaped, f"join me: {link}"):
        assert _parse(pasted).peer_id == ALICE.node_id.peer_id  # type: ignore[attr-defined]


def test_the_largest_invite_fits_the_text_cap() -> None:
    addrs = tuple(f"/dns4/{'a' * 230}.example/tcp/{41100 + i}" for i in range(16))
    text = _invite(name="a" * 63, addrs=addrs)
    assert len(text) < MAX_INVITE_TEXT
    assert _parse(text).addrs == addrs  # type: ignore[attr-defined]


@pytest.mark.parametrize("ttl", [0, 59, 31 * 86400])
def test_make_invite_refuses_a_ttl_out_of_range(ttl: float) -> None:
    with pytest.raises(GateError, match="valid for"):
        _invite(ttl=ttl)


# -- bad input, one check each ----------------------------------------------------------------


def test_garbage_is_not_an_invite() -> None:
    _refused("hello, please add me", "not a Gate invite")


def test_empty_text_is_no_invite() -> None:
    _refused("  \n", "no invite")


def test_another_prefix_is_not_an_invite() -> None:
    _refused("gate-invitation:v1:" + _invite().removeprefix("gate-invite:v1:"), "not a Gate")


def test_a_prefix_without_version_is_refused() -> None:
    _refused("gate-invite:" + _invite().removeprefix("gate-invite:v1:"), "version (v1:)")


def test_another_version_says_which() -> None:
    error = _refused(_invite().replace(":v1:", ":v2:"), "version 2 invite", "reads version 1")
    assert error.hint is not None and "upgrade" in error.hint


def test_characters_outside_base64url_are_damage() -> None:
    text = _invite()
    _refused(text[:40] + "+/" + text[42:], "damaged", "base64url")


@pytest.mark.parametrize("cut", range(1, 120))
def test_a_truncated_invite_is_cut_short(cut: int) -> None:
    """Wherever the cut falls (mid-byte, mid-field, in the signature), it says so."""
    _refused(_invite()[:-cut], "cut short")


def test_a_body_shorter_than_a_signature_is_cut_short() -> None:
    _refused("gate-invite:v1:" + base64.urlsafe_b64encode(b"\x01" * 40).decode(), "cut short")


def test_bytes_after_the_last_field_are_damage() -> None:
    _refused(_token(_body() + b"\x00\x00"), "bytes follow its last field")


def test_the_content_version_must_match_the_text() -> None:
    _refused(_token(_body(version=2)), "says version 1 but its content says 2")


def test_a_peer_id_that_is_not_ed25519_is_damage() -> None:
    sha256_multihash = bytes((0x12, 0x20)) + bytes(36)
    _refused(_token(_body(peer_id=sha256_multihash)), "Ed25519 peer id")


def test_a_forged_signature_is_refused() -> None:
    """Bob signs an invite that names Alice's id: the key in the id does not verify it."""
    error = _refused(_token(_body(), signer=BOB), "signature does not match")
    assert ALICE.node_id.peer_id in error.message


@pytest.mark.parametrize(
    "field",
    [
        {"name": b"mallory"},
        {"expires": int(NOW + 10 * 365 * 86400)},
        {"addrs": (b"/ip4/198.51.100.66/tcp/41145",)},
    ],
    ids=["name", "expiry", "addrs"],
)
def test_a_tampered_field_is_refused(field: dict[str, object]) -> None:
    """One field changed after signing: the signature was over the original bytes."""
    original = ALICE.sign(SIGNING_CONTEXT + _body())
    tampered = _body(**field)  # type: ignore[arg-type]
    text = "gate-invite:v1:" + base64.urlsafe_b64encode(tampered + original).decode().rstrip("=")
    _refused(text, "signature does not match")


def test_an_expired_invite_is_refused() -> None:
    text = _invite(ttl=3600)
    assert _parse(text, now=NOW + 3599)
    error = _refused(text, "expired at", "alice", now=NOW + 3600)
    assert error.hint is not None and "new one" in error.hint


def test_an_invite_of_our_own_id_is_refused() -> None:
    _refused(_invite(), "this node's own", own=ALICE)


@pytest.mark.parametrize(
    "addr",
    ["/ip4/999.1.1.1/tcp/41145", "/ip4/203.0.113.7/tcp/70000", "/carrier-pigeon/1"],
)
def test_an_address_the_spec_would_refuse_is_refused(addr: str) -> None:
    """Signed by the right key, but not a multiaddr the node can dial (check_addr)."""
    _refused(_token(_body(addrs=(addr.encode(),))), "address this node cannot use", addr)


def test_an_address_naming_another_peer_is_refused() -> None:
    addr = f"/ip4/203.0.113.7/tcp/41145/p2p/{BOB.node_id.peer_id}"
    _refused(_token(_body(addrs=(addr.encode(),))), "names another peer")


def test_an_address_with_spaces_is_refused_without_a_parser() -> None:
    """The structural check holds even where the caller passes no check_addr."""
    text = _token(_body(addrs=(b"/ip4/203.0.113.7 /tcp/1",)))
    with pytest.raises(GateError, match="not a multiaddr"):
        parse_invite(text, NOW, own_peer_id=BOB.node_id.peer_id)


def test_an_address_of_our_own_id_in_p2p_form_is_fine() -> None:
    addr = f"/ip4/203.0.113.7/tcp/41145/p2p/{ALICE.node_id.peer_id}"
    assert _parse(_token(_body(addrs=(addr.encode(),)))).addrs == (addr,)  # type: ignore[attr-defined]


def test_a_claimed_address_count_over_the_cap_is_damage() -> None:
    body = _body(addrs=())[:-1] + bytes((17,))
    _refused(_token(body), "claims 17 addresses")


def test_a_name_that_is_not_utf8_is_damage() -> None:
    _refused(_token(_body(name=b"\xff\xfe")), "name is not UTF-8")


def test_a_five_megabyte_paste_is_refused_fast() -> None:
    huge = "gate-invite:v1:" + "A" * (5 * 1024 * 1024)
    began = time.perf_counter()
    error = _refused(huge, "characters", "far more than an invite")
    assert time.perf_counter() - began < 0.05
    assert "5,242,895" in error.message
