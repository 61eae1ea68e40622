"""The node id (a 32-byte Ed25519 public key) and its three textual forms.

Deliberately free of libp2p: importing it costs about 2 s, and the CLI and spec loader need ids.
"""

from __future__ import annotations

__all__ = ("NodeId", "normalise_peer_id")

import base64
import re
from dataclasses import dataclass
from typing import Final

_KEY_LEN: Final = 32

# Identity multihash (code 0x00, length 0x24 = 36) of the protobuf PublicKey message
# {Type: Ed25519 (field 1 = 1), Data (field 2, 32 bytes)}; this is what makes "12D3KooW".
_PEER_ID_PREFIX: Final = bytes((0x00, 0x24, 0x08, 0x01, 0x12, 0x20))
_PEER_ID_LEN: Final = len(_PEER_ID_PREFIX) + _KEY_LEN

_PARSE_ERROR: Final = "not a peer id (expected 12D3KooW..., 64 hex chars or a 52-char label)"

_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_LABEL_RE: Final = re.compile(r"[a-zA-Z2-7]{52}")
# No valid form is longer than the hex one; the cap keeps base58 decoding (quadratic in the
# length) cheap on hostile input such as an X-Target-Node header.
_MAX_TEXT_LEN: Final = 64

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    digits: list[str] = []
    while n:
        n, r = divmod(n, 58)
        digits.append(_B58_ALPHABET[r])
    # Each leading zero byte is one leading "1"; the integer conversion would lose them.
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + n.to_bytes((n.bit_length() + 7) // 8, "big")


@dataclass(frozen=True, slots=True, repr=False)
class NodeId:
    """A node's identity: its raw 32-byte Ed25519 public key.

    ``peer_id`` (libp2p), ``hex`` (display, ``X-Target-Node``) and ``label`` (DNS) are views of
    the same key; ``parse`` accepts any of them.
    """

    public_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _KEY_LEN:
            raise ValueError(f"a node id is a {_KEY_LEN}-byte Ed25519 public key")

    @property
    def hex(self) -> str:
        return self.public_key.hex()

    @property
    def peer_id(self) -> str:
        return _b58encode(self.peer_id_bytes())

    @property
    def label(self) -> str:
        # 64 hex chars exceed the 63-char DNS label limit; base32 of 32 bytes is 52.
        return base64.b32encode(self.public_key).decode("ascii").rstrip("=").lower()

    def peer_id_bytes(self) -> bytes:
        return _PEER_ID_PREFIX + self.public_key

    @classmethod
    def from_peer_id_bytes(cls, data: bytes) -> NodeId:
        if len(data) != _PEER_ID_LEN or not data.startswith(_PEER_ID_PREFIX):
            raise ValueError(
                "not an Ed25519 peer id: expected the identity multihash "
                f"{_PEER_ID_PREFIX.hex()} followed by a {_KEY_LEN}-byte key"
            )
        return cls(bytes(data[len(_PEER_ID_PREFIX) :]))

    @classmethod
    def parse(cls, text: str) -> NodeId:
        text = text.strip()
        if len(text) > _MAX_TEXT_LEN:
            raise ValueError(_PARSE_ERROR)
        if _HEX_RE.fullmatch(text):
            return cls(bytes.fromhex(text))
        if _LABEL_RE.fullmatch(text):
            # The 52nd char carries one key bit and four padding bits; b32decode ignores the
            # padding bits, so compare the re-encoding to refuse aliases of the same key.
            node_id = cls(base64.b32decode(text.upper() + "===="))
            if node_id.label != text.lower():
                raise ValueError(_PARSE_ERROR)
            return node_id
        # Peer ids start with "1" (the multihash's 0x00 byte), which no label or hex id contains.
        try:
            return cls.from_peer_id_bytes(_b58decode(text))
        except ValueError as e:
            raise ValueError(_PARSE_ERROR) from e

    def __str__(self) -> str:
        return self.peer_id

    def __repr__(self) -> str:
        return f"NodeId({self.peer_id!r})"


def normalise_peer_id(text: str) -> str:
    """Return the canonical ``12D3KooW...`` form of any accepted node id text."""
    return NodeId.parse(text).peer_id
