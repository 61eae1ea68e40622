"""Peer ids in any of their three forms are normalised to the 12D3KooW form on load."""

from __future__ import annotations

import pytest

from gate_runner.identity import NodeId
from gate_runner.spec import NodeSpec, load_spec


def _spec(peer_id: str, relay_id: str) -> str:
    return (
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}\nspec:\n"
        f"  peers:\n    - name: bob\n      id: {peer_id}\n"
        f'      addrs: ["/ip4/203.0.113.7/tcp/41145/p2p/{peer_id}"]\n'
        f'  endpoints:\n    public:\n      relays: ["/dns4/r.example/tcp/41146/p2p/{relay_id}"]\n'
    )


@pytest.mark.parametrize("form", ["peer_id", "hex", "label", "HEX", "LABEL"])
def test_every_form_normalises_to_the_peer_id(form: str, bob: NodeId, carol: NodeId) -> None:
    def text(node: NodeId) -> str:
        return str(getattr(node, form.lower())).upper() if form.isupper() else getattr(node, form)

    loaded = load_spec(_spec(text(bob), text(carol)), env={})
    spec = loaded.spec
    assert isinstance(spec, NodeSpec)
    assert spec.peers[0].id == bob.peer_id
    assert spec.peers[0].addrs == (f"/ip4/203.0.113.7/tcp/41145/p2p/{bob.peer_id}",)
    assert spec.endpoints.public.relays == (f"/dns4/r.example/tcp/41146/p2p/{carol.peer_id}",)
    # The stored document is normalised too, so history and write-back agree with the spec.
    peer = loaded.document["spec"]["peers"][0]
    assert peer["id"] == bob.peer_id
    assert peer["addrs"] == [f"/ip4/203.0.113.7/tcp/41145/p2p/{bob.peer_id}"]


def test_address_naming_another_peer_is_refused(bob: NodeId, carol: NodeId) -> None:
    text = (
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}\nspec:\n"
        f"  peers:\n    - name: bob\n      id: {bob.peer_id}\n"
        f'      addrs: ["/ip4/203.0.113.7/tcp/41145/p2p/{carol.hex}"]\n'
    )
    with pytest.raises(
        Exception, match=r"spec.peers\[0\].addrs\[0\]: this address ends in another"
    ):
        load_spec(text, source="gate.yaml", env={})
