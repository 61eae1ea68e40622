"""NodeId: its three textual forms, parsing, and agreement with py-libp2p's peer ids."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gate_runner.identity import NodeId, normalise_peer_id

PARSE_ERROR = re.escape("not a peer id (expected 12D3KooW..., 64 hex chars or a 52-char label)")

# Public key of seed bytes(range(32)); the peer id was cross-checked once with py-libp2p 0.8.1
# (ID.from_pubkey(create_new_key_pair(seed).public_key)) and is re-checked below.
KNOWN_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
KNOWN_PEER_ID = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
KNOWN_LABEL = "aoqqpp7tzyil4hlq3umoos6atft6jvrqtosq2xy53sdgiesvgg4a"
KNOWN = NodeId(bytes.fromhex(KNOWN_HEX))

keys32 = st.binary(min_size=32, max_size=32)


def test_known_vector() -> None:
    assert KNOWN.hex == KNOWN_HEX
    assert KNOWN.peer_id == KNOWN_PEER_ID
    assert KNOWN.label == KNOWN_LABEL
    assert str(KNOWN) == KNOWN_PEER_ID
    assert repr(KNOWN) == f"NodeId('{KNOWN_PEER_ID}')"
    assert KNOWN.peer_id_bytes() == bytes.fromhex("002408011220") + KNOWN.public_key


@given(keys32)
def test_forms_round_trip(key: bytes) -> None:
    node_id = NodeId(key)
    assert re.fullmatch(r"[0-9a-f]{64}", node_id.hex)
    assert re.fullmatch(r"[a-z2-7]{52}", node_id.label)
    assert node_id.peer_id.startswith("12D3KooW")
    assert len(node_id.peer_id) == 52
    for text in (node_id.hex, node_id.peer_id, node_id.label):
        assert NodeId.parse(text) == node_id
        assert normalise_peer_id(text) == node_id.peer_id
    assert NodeId.from_peer_id_bytes(node_id.peer_id_bytes()) == node_id


@pytest.mark.parametrize(
    "text",
    [
        KNOWN_HEX.upper(),
        f"  {KNOWN_HEX}\n",
        KNOWN_LABEL.upper(),
        f"\t{KNOWN_LABEL} ",
        f" {KNOWN_PEER_ID} ",
    ],
)
def test_parse_is_lenient_about_case_and_surrounding_space(text: str) -> None:
    assert NodeId.parse(text) == KNOWN


def test_node_ids_are_hashable_values() -> None:
    assert {NodeId(bytes(32)), NodeId(bytes(32))} == {NodeId(bytes(32))}
    assert NodeId(bytes(32)) != NodeId(bytes(31) + b"\1")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param(KNOWN_HEX[:63], id="63-hex"),
        pytest.param(KNOWN_HEX + "0", id="65-hex"),
        pytest.param("g" + KNOWN_HEX[1:], id="non-hex"),
        pytest.param(KNOWN_HEX[:32] + " " + KNOWN_HEX[32:], id="hex-with-inner-space"),
        # An RSA-style peer id: the SHA-256 multihash (0x12 0x20) of a key, not the key itself.
        pytest.param("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", id="Qm-rsa"),
        pytest.param("12D3KooW0" + KNOWN_PEER_ID[9:], id="base58-zero"),
        pytest.param(KNOWN_PEER_ID[:-1], id="peer-id-short"),
        pytest.param(KNOWN_PEER_ID + "1", id="peer-id-long"),
        pytest.param(KNOWN_LABEL[:51], id="51-char-label"),
        pytest.param(KNOWN_LABEL + "a", id="53-char-label"),
        pytest.param(KNOWN_LABEL[:51] + "1", id="label-bad-char"),
        # Same 256 key bits as KNOWN_LABEL but the unused padding bits set: an alias, refused.
        pytest.param(KNOWN_LABEL[:51] + "b", id="label-nonzero-padding"),
        pytest.param("1" * 10_000, id="huge"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=PARSE_ERROR):
        NodeId.parse(text)
    with pytest.raises(ValueError, match=PARSE_ERROR):
        normalise_peer_id(text)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(KNOWN.peer_id_bytes()[:-1], id="short"),
        pytest.param(KNOWN.peer_id_bytes() + b"\0", id="long"),
        pytest.param(b"\x00\x24\x08\x00\x12\x20" + bytes(32), id="rsa-key-type"),
        pytest.param(b"\x12\x20" + bytes(32), id="sha256-multihash"),
    ],
)
def test_from_peer_id_bytes_rejects(data: bytes) -> None:
    with pytest.raises(ValueError, match="not an Ed25519 peer id"):
        NodeId.from_peer_id_bytes(data)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33)])
def test_node_id_needs_32_bytes(key: bytes) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        NodeId(key)


@pytest.mark.parametrize("seed", [bytes(range(32)), bytes(32), b"\xff" * 32, b"gate" * 8])
def test_peer_id_matches_libp2p(seed: bytes) -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    from gate_runner.identity import Identity

    key_pair = create_new_key_pair(seed)
    theirs = ID.from_pubkey(key_pair.public_key)
    ours = Identity.from_seed(seed).node_id
    assert ours.public_key == key_pair.public_key.to_bytes()
    assert ours.peer_id == theirs.to_base58()
    assert ours.peer_id_bytes() == theirs.to_bytes()
    assert NodeId.parse(theirs.to_base58()) == ours
    if seed == bytes(range(32)):
        assert ours == KNOWN


@given(keys32)
def test_peer_id_matches_libp2p_for_any_key(key: bytes) -> None:
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID

    theirs = ID.from_pubkey(Ed25519PublicKey.from_bytes(key))
    assert NodeId(key).peer_id == theirs.to_base58()
    assert NodeId.parse(theirs.to_base58()).public_key == key


def test_importing_identity_does_not_import_libp2p() -> None:
    code = "import sys, gate_runner.identity; sys.exit('libp2p' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
