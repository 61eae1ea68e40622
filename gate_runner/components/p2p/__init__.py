"""The `p2p` component: the libp2p host, links to the spec's peers, hello and HTTP over P2P.

Inbound requests are checked against the trust rules with the Noise-authenticated peer id,
then served by this node's own engines through the same router as local clients.
"""

from __future__ import annotations

__all__ = ("HELLO_PROTOCOL", "P2PComponent", "P2PSlice")

from gate_runner.components.p2p.component import P2PComponent, P2PSlice
from gate_runner.components.p2p.hello import HELLO_PROTOCOL
