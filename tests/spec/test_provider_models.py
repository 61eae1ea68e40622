"""A static provider's model allowlist and name prefix: loaded into ProviderSpec, and a bad
prefix or allowlist refused at its path with a message that says what to write."""

from __future__ import annotations

import pytest

from gate_runner.errors import SpecError
from gate_runner.spec import load_spec

HEAD = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata:\n  name: alice\nspec:\n"


def with_provider(fields: str) -> str:
    return HEAD + (
        "  providers:\n    static:\n"
        f"      - {{name: ollama, kind: ollama, url: 'http://127.0.0.1:11434'{fields}}}\n"
    )


def test_models_and_prefix_are_loaded() -> None:
    spec = load_spec(
        with_provider(", models: ['llama3*', 'qwen2:0.5b'], prefix: home/"), env={}
    ).spec
    (provider,) = spec.providers.static
    assert provider.models == ("llama3*", "qwen2:0.5b")
    assert provider.prefix == "home/"


def test_without_them_every_model_is_offered_under_its_own_name() -> None:
    (provider,) = load_spec(with_provider(""), env={}).spec.providers.static
    assert provider.models is None
    assert provider.prefix == ""


@pytest.mark.parametrize("prefix", ["home/", "lab.gpu-1_", "a", "A.b/"])
def test_good_prefixes(prefix: str) -> None:
    (provider,) = load_spec(with_provider(f", prefix: '{prefix}'"), env={}).spec.providers.static
    assert provider.prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    ["home@", "@home/", "two/levels/", "with space", "", "x" * 65 + "/", "home//"],
)
def test_bad_prefix_is_refused_at_its_path(prefix: str) -> None:
    text = with_provider(f", prefix: '{prefix}'")
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="gate.yaml", env={})
    (issue,) = caught.value.issues
    assert issue.path == "spec.providers.static[0].prefix"
    assert issue.line == 8
    assert f"{prefix!r} is not in the expected form" in issue.message
    # The fix is spelled out, including why '@' is refused.
    assert "no '@', which names a peer in model@peer" in str(caught.value)


@pytest.mark.parametrize(
    ("models", "message"),
    [("[]", "needs at least 1 entry"), ("['']", "must not be empty"), ("llama3", "a list")],
)
def test_bad_allowlist_is_refused_at_its_path(models: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(with_provider(f", models: {models}"), source="gate.yaml", env={})
    (issue,) = caught.value.issues
    assert issue.path.startswith("spec.providers.static[0].models")
    assert message in issue.message
