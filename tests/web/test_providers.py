"""The providers page against real `gate up` nodes and the recorded-contract Ollama: the list
with models and health, adding, editing, testing and removing a provider and turning
discovery on and off (each writing gate.yaml through spec.apply), a dead engine that never
stalls the page, and the server's own words for a bad URL or prefix, with nothing written."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from tests.rig import GateNode, ServerProcess
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.web.conftest import Axe, Shot

ENGINE_MODELS = "llama3:8b,llama3:70b,qwen2:0.5b,phi3:mini"


@pytest.fixture(scope="module")
def ollama() -> Iterator[ServerProcess]:
    server = ServerProcess("tests.fakes.ollama", "--models", ENGINE_MODELS, "--delay", "0")
    yield server
    server.stop()


@pytest.fixture
def dead_engine() -> Iterator[str]:
    """A port that takes connections and never answers: an engine hung mid-load, the case
    that freezes other UIs (a refused port fails at once, which proves nothing)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def start_node(factory: type[GateNode], tmp: Path, providers: str = "") -> GateNode:
    node = factory(tmp, extra=providers)
    node.start()
    return node


def static_entries(node: GateNode) -> list[dict[str, object]]:
    document = yaml.safe_load(node.spec_path.read_text())
    return list((document["spec"].get("providers") or {}).get("static") or [])


def open_providers(page: Page, node: GateNode) -> None:
    """Log in and open the page. Reloaded there, because the shell's first page (the
    dashboard), still loading when the hash changes, can replace the page just opened."""
    login(page, node)
    open_page(page, node, "providers")
    page.reload()
    page.wait_for_selector(".conn.open")
    page.wait_for_selector(".providers")


def card(page: Page, name: str) -> Locator:
    return page.locator(f'li.prov[data-provider="{name}"]')


def fill_form(page: Page, **values: str) -> None:
    for field, value in values.items():
        page.fill(f"#pf-{field}", value)


def submit(page: Page) -> None:
    page.locator(".prov-form").get_by_role("button", name="Add provider").or_(
        page.locator(".prov-form").get_by_role("button", name="Save changes")
    ).click()


def clean(page_log: PageLog) -> None:
    assert page_log.console_errors() == [] and page_log.page_errors == []


def test_the_list_shows_a_provider_with_its_models_and_health(
    tmp_path: Path,
    node_factory: type[GateNode],
    ollama: ServerProcess,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    node = start_node(
        node_factory,
        tmp_path,
        "    static:\n"
        f"      - {{name: ollama, kind: ollama, url: '{ollama.url}', "
        "models: ['llama3*', 'qwen2:*'], prefix: home/}\n",
    )
    open_providers(page, node)
    ollama_card = card(page, "ollama")
    ollama_card.wait_for()
    assert ollama_card.locator("[data-health]").inner_text().strip() == "Healthy"
    assert ollama_card.locator("h3").inner_text() == "ollama"
    assert ollama.url in ollama_card.inner_text()
    chips = ollama_card.locator(".chips li").all_inner_texts()
    # The allowlist and prefix of the spec, as the node offers the models.
    assert sorted(chips) == ["home/llama3:70b", "home/llama3:8b", "home/qwen2:0.5b"]
    facts = ollama_card.locator(".prov-facts").inner_text()
    assert " ms" in facts and "closed (sending requests)" in facts
    assert "only llama3*, qwen2:*" in facts and "listed as home/<model>" in facts
    switch = page.get_by_role("switch", name="Find engines on this machine")
    assert not switch.is_checked()
    assert axe(page) == []
    clean(page_log)
    shot(page, "providers")


def test_with_no_engine_the_page_says_what_to_do(
    tmp_path: Path, node_factory: type[GateNode], page: Page, shot: Shot, axe: Axe
) -> None:
    node = start_node(node_factory, tmp_path)
    open_providers(page, node)
    empty = page.locator(".prov-empty")
    empty.wait_for()
    assert "No engines found: start Ollama or LM Studio, or add one" in empty.inner_text()
    assert "Discovery is off" in empty.inner_text()
    assert axe(page) == []
    shot(page, "empty")
    # Its button opens the form, with focus in the first field.
    empty.get_by_role("button", name="Add a provider").click()
    assert page.evaluate("document.activeElement.id") == "pf-name"


def test_adding_a_provider_writes_gate_yaml_and_shows_it_live(
    tmp_path: Path,
    node_factory: type[GateNode],
    ollama: ServerProcess,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    node = start_node(node_factory, tmp_path)
    open_providers(page, node)
    page.click("#providers-add")
    fill_form(page, name="home", url=ollama.url, models="qwen2*, phi3:*", prefix="lab/")
    assert "listed as lab/llama3" in page.locator("#pf-prefix-help").inner_text()
    assert axe(page) == []
    shot(page, "form")
    submit(page)

    home = card(page, "home")
    home.locator('[data-health="Healthy"]').wait_for()
    home.locator(".chips li", has_text="lab/qwen2:0.5b").wait_for()
    assert sorted(home.locator(".chips li").all_inner_texts()) == [
        "lab/phi3:mini",
        "lab/qwen2:0.5b",
    ]
    assert "Added home" in page.locator(".prov-notice").inner_text()
    # gate.yaml holds it, next to the comments it had.
    text = node.spec_path.read_text()
    assert text.startswith("# test node spec")
    assert static_entries(node) == [
        {
            "name": "home",
            "kind": "ollama",
            "url": ollama.url,
            "models": ["qwen2*", "phi3:*"],
            "prefix": "lab/",
        }
    ]

    # Editing it: the allowlist goes, and the models follow without a reload.
    home.get_by_role("button", name="Edit home").click()
    assert page.input_value("#pf-models") == "qwen2*, phi3:*"
    fill_form(page, models="", prefix="")
    submit(page)
    home.locator(".chips li", has_text="llama3:70b").wait_for()
    assert sorted(home.locator(".chips li").all_inner_texts()) == sorted(ENGINE_MODELS.split(","))
    assert static_entries(node) == [{"name": "home", "kind": "ollama", "url": ollama.url}]
    clean(page_log)
    shot(page, "added")


def test_a_dead_engine_never_stalls_the_page(
    tmp_path: Path,
    node_factory: type[GateNode],
    ollama: ServerProcess,
    dead_engine: str,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    node = start_node(
        node_factory,
        tmp_path,
        f"    static:\n      - {{name: ollama, kind: ollama, url: '{ollama.url}'}}\n",
    )
    open_providers(page, node)
    card(page, "ollama").locator('[data-health="Healthy"]').wait_for()

    # Added from the form: the page answers at once, while the node's first probe of the
    # engine waits for an answer that never comes.
    page.click("#providers-add")
    fill_form(page, name="hung", url=dead_engine)
    began = time.monotonic()
    submit(page)
    hung = card(page, "hung")
    hung.wait_for(timeout=3000)
    assert time.monotonic() - began < 2.0
    assert "hung" in [e["name"] for e in static_entries(node)]

    # A fresh load renders from what the node knows, without waiting for any probe.
    began = time.monotonic()
    page.reload()
    card(page, "hung").wait_for()
    card(page, "ollama").wait_for()
    assert time.monotonic() - began < 1.5

    # Testing it runs in its row; the rest of the page stays usable meanwhile.
    card(page, "hung").locator('[data-health="Unhealthy"]').wait_for(timeout=15_000)
    card(page, "hung").get_by_role("button", name="Test hung").click()
    testing = card(page, "hung").get_by_role("button", name="Testing hung…")
    testing.wait_for(timeout=1000)
    assert card(page, "hung").locator(".spinner").count() >= 1
    began = time.monotonic()
    card(page, "ollama").get_by_role("button", name="Test ollama").click()
    card(page, "ollama").get_by_role("button", name="Test ollama", exact=True).wait_for()
    assert card(page, "ollama").locator("[data-health]").inner_text().strip() == "Healthy"
    page.get_by_role("switch", name="Find engines on this machine").focus()
    assert time.monotonic() - began < 1.0
    assert testing.is_visible(), "the dead engine's probe should still be pending"
    shot(page, "dead-testing")

    # The bounded probe ends, and says why in words.
    card(page, "hung").get_by_role("button", name="Test hung", exact=True).wait_for(timeout=10_000)
    hung = card(page, "hung")
    assert hung.locator("[data-health]").inner_text().strip() == "Unreachable"
    assert "no answer within" in hung.locator(".prov-error").inner_text()
    assert axe(page) == []

    # Removing it asks first, then rewrites gate.yaml, and the card goes.
    hung.get_by_role("button", name="Remove hung").click()
    hung.get_by_role("button", name="Yes, remove").click()
    hung.wait_for(state="detached")
    assert [e["name"] for e in static_entries(node)] == ["ollama"]
    clean(page_log)
    shot(page, "dead-removed")


def test_discovery_turns_on_and_off_from_the_page(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess, page: Page, shot: Shot
) -> None:
    node = node_factory(tmp_path)
    node.spec_path.write_text(
        node.spec_path.read_text().replace(
            "      enabled: false",
            "      enabled: false\n      interval: 1s\n      targets:\n"
            f"        - {{name: local-ollama, kind: ollama, url: '{ollama.url}'}}",
        )
    )
    node.start()
    open_providers(page, node)
    page.locator(".prov-empty").wait_for()
    switch = page.get_by_role("switch", name="Find engines on this machine")
    assert not switch.is_checked()

    switch.check()
    found = card(page, "local-ollama")
    found.wait_for(timeout=10_000)
    assert "found" in found.locator(".tag-found").inner_text()
    found.locator(".chips li", has_text="llama3:8b").wait_for()
    assert yaml.safe_load(node.spec_path.read_text())["spec"]["providers"]["discovery"]["enabled"]
    shot(page, "discovered")

    # A found engine can be declared: the form comes filled in with it.
    found.get_by_role("button", name="Declare local-ollama in gate.yaml").click()
    assert page.input_value("#pf-name") == "local-ollama"
    assert page.input_value("#pf-url") == ollama.url
    page.get_by_role("button", name="Cancel").click()

    switch.uncheck()
    found.wait_for(state="detached", timeout=10_000)
    assert switch.is_enabled() and not switch.is_checked()
    discovery = yaml.safe_load(node.spec_path.read_text())["spec"]["providers"]["discovery"]
    assert discovery["enabled"] is False and discovery["targets"][0]["name"] == "local-ollama"


def test_a_bad_url_or_prefix_shows_the_servers_words_and_writes_nothing(
    tmp_path: Path,
    node_factory: type[GateNode],
    ollama: ServerProcess,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    node = start_node(node_factory, tmp_path)
    before = node.spec_path.read_bytes()
    generation = node.generation()
    open_providers(page, node)
    page.click("#providers-add")
    fill_form(page, name="broken", url="ftp://nowhere", prefix="me@")
    submit(page)

    url_error = page.locator("#pf-url-error")
    url_error.wait_for()
    assert "'ftp://nowhere' is not in the expected form" in url_error.inner_text()
    assert page.get_attribute("#pf-url", "aria-invalid") == "true"
    assert "pf-url-error" in (page.get_attribute("#pf-url", "aria-describedby") or "")
    prefix_error = page.locator("#pf-prefix-error").inner_text()
    assert "'me@' is not in the expected form" in prefix_error
    assert "no '@', which names a peer in model@peer" in prefix_error
    assert "Nothing was written" in page.get_by_role("alert").first.inner_text()
    assert node.spec_path.read_bytes() == before
    assert node.generation() == generation
    assert axe(page) == []
    shot(page, "bad-url")

    # Fixed, it goes through.
    fill_form(page, url=ollama.url, prefix="")
    submit(page)
    card(page, "broken").locator('[data-health="Healthy"]').wait_for()
    assert node.generation() == generation + 1
    clean(page_log)


def test_a_change_made_elsewhere_meanwhile_is_a_conflict_not_an_overwrite(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess, page: Page
) -> None:
    node = start_node(node_factory, tmp_path)
    open_providers(page, node)
    page.click("#providers-add")
    fill_form(page, name="home", url=ollama.url)
    # Someone else applies a change (another tab, the CLI) while the form is open.
    got = node.rpc("spec.get")
    document = got["document"]
    document["spec"]["providers"]["discovery"]["interval"] = "45s"
    node.rpc("spec.apply", {"yaml": json.dumps(document), "expectedGeneration": 1})
    written = node.spec_path.read_bytes()

    submit(page)
    alert = page.locator(".prov-form [role=alert]")
    alert.wait_for()
    assert "Someone changed the spec while you were editing it" in alert.inner_text()
    assert node.spec_path.read_bytes() == written
    assert page.input_value("#pf-url") == ollama.url  # the person's work is kept

    # Saving again goes on from the spec as it is now, and keeps the other change.
    submit(page)
    card(page, "home").wait_for()
    discovery = yaml.safe_load(node.spec_path.read_text())["spec"]["providers"]["discovery"]
    assert discovery["interval"] == "45s"
    assert [e["name"] for e in static_entries(node)] == ["home"]
