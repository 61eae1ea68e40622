"""The node's identity: its Ed25519 key (``keys``) and the id derived from it (``ids``)."""

from __future__ import annotations

__all__ = ("Identity", "NodeId", "normalise_peer_id", "verify")

from gate_runner.identity.ids import NodeId, normalise_peer_id
from gate_runner.identity.keys import Identity, verify
