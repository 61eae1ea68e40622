"""The Config page against a real `gate up`: the form and the YAML edit one spec, the node's
errors show at their line and nothing is written, a diff comes before apply and gate.yaml
keeps its comments, a change made elsewhere (the CLI, a second browser) is a conflict with
"reload" and "show their change", history rolls back, and a 5 MB paste is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from playwright.sync_api import expect

from tests.rig import GateNode, run_gate
from tests.web.conftest import DESKTOP, PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.web.conftest import Axe, Shot

EDITOR = ".editor-host .cm-content"
MAX_SPEC_BYTES = 1 << 20  # gate_runner/spec/yamlsafe.py


@pytest.fixture
def other_page(browser: Browser) -> Iterator[Page]:
    """A second browser context: another tab of another person."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", locale="en-GB")
    try:
        yield context.new_page()
    finally:
        context.close()


def open_config(page: Page, node: GateNode) -> None:
    login(page, node)
    open_page(page, node, "config")
    page.wait_for_selector(f"{EDITOR}:has-text('test-node')")
    page.wait_for_selector(".check.valid")


def editor_text(page: Page) -> str:
    return page.locator(EDITOR).inner_text()


def set_editor_text(page: Page, text: str) -> None:
    """Replace the editor's text as a person would: select all, delete, then type (inserted
    whole, so the editor's auto-indent does not re-indent it). Typing over a many-line
    selection would let Chromium's own editing try a style="" attribute, which CSP blocks."""
    page.locator(EDITOR).click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    page.keyboard.insert_text(text)


def generation(node: GateNode) -> int:
    result: int = node.rpc("spec.get")["generation"]
    return result


def wait_valid(page: Page) -> None:
    page.wait_for_selector(".check.valid:has-text('Valid')")


def apply_from_page(page: Page) -> None:
    page.get_by_role("button", name="Review changes").click()
    page.wait_for_selector("pre.diff")
    page.get_by_role("button", name="Apply as generation").click()


def clean(page_log: PageLog) -> None:
    assert page_log.console_errors() == [] and page_log.page_errors == [], (
        page_log.console,
        page_log.page_errors,
    )


def test_yaml_error_shows_at_its_line_and_nothing_is_written(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    before = node.spec_path.read_text()
    open_config(page, node)
    assert page.locator("#cfg-metadata-name").input_value() == "test-node"
    assert "apiVersion: gate.hellas.ai/v1" in editor_text(page)
    assert axe(page) == []
    shot(page, "loaded")

    text = editor_text(page)
    bad = text.replace("name: test-node", "name: Bad_Name")
    line = bad.splitlines().index("  name: Bad_Name") + 1
    set_editor_text(page, bad)
    issue = page.locator(".issues li").first
    issue.wait_for()
    assert f"Line {line}, column 3" in issue.inner_text()
    assert "metadata.name" in issue.inner_text()
    assert "not a valid name: 'Bad_Name'" in issue.inner_text()
    assert "How to fix: use lowercase letters" in issue.inner_text()
    # The editor marks the same place: an error range on the value's line and a gutter marker.
    marked = page.locator(".editor-host .cm-lintRange-error").first
    assert "name: Bad_Name" in marked.inner_text()
    page.locator(".editor-host .cm-lint-marker-error").first.wait_for()
    # The form waits for valid YAML, and nothing can be applied.
    assert page.locator("#cfg-metadata-name").is_disabled()
    assert page.get_by_role("button", name="Review changes").is_disabled()
    assert axe(page) == []
    shot(page, "yaml-error")

    assert node.spec_path.read_text() == before
    assert generation(node) == 1
    clean(page_log)


def test_form_and_yaml_stay_in_step_and_apply_keeps_comments(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    open_config(page, node)
    # Form -> YAML: a field rewrites the text, nested keys created as needed.
    page.fill("#cfg-spec-routing-retry-maxAttempts", "5")
    page.wait_for_function(
        "() => document.querySelector('.editor-host').shadowRoot"
        ".querySelector('.cm-content').innerText.includes('maxAttempts: 5')"
    )
    page.select_option("#cfg-spec-trust-mode", "public")
    assert "any peer that connects may use your" in page.locator(".warn-box").inner_text()
    page.select_option("#cfg-spec-trust-mode", "private")
    page.locator("#cfg-spec-providers-discovery-enabled").check()
    wait_valid(page)
    text = editor_text(page)
    document = yaml.safe_load(text)
    assert document["spec"]["routing"] == {"retry": {"maxAttempts": 5}}
    assert document["spec"]["trust"] == {"mode": "private"}
    assert document["spec"]["providers"]["discovery"]["enabled"] is True
    # Clearing a field removes its key (its default applies) and the maps it leaves empty.
    page.fill("#cfg-spec-routing-retry-maxAttempts", "")
    wait_valid(page)
    assert "routing" not in yaml.safe_load(editor_text(page))["spec"]
    page.fill("#cfg-spec-routing-retry-maxAttempts", "5")

    # YAML -> form: once the node says it is valid, the form follows.
    set_editor_text(page, editor_text(page).replace("name: test-node", "name: renamed-node"))
    page.wait_for_function(
        "() => document.querySelector('#cfg-metadata-name').value === 'renamed-node'"
    )
    assert page.locator("#cfg-spec-routing-retry-maxAttempts").input_value() == "5"

    # A diff before apply, then apply with the generation loaded.
    page.get_by_role("button", name="Review changes").click()
    diff = page.locator("pre.diff").inner_text()
    assert "-  name: test-node" in diff and "+  name: renamed-node" in diff
    assert "+      maxAttempts: 5" in diff
    assert generation(node) == 1
    assert axe(page) == []
    shot(page, "review")
    page.get_by_role("button", name="Apply as generation 2").click()
    result = page.locator(".ok-banner")
    result.wait_for()
    assert "Applied as generation 2" in result.inner_text()
    assert "ready" in result.locator("ul.conditions").inner_text()
    page.wait_for_selector(".check.valid:has-text('No changes')")
    assert page.locator("table.history tbody tr").count() == 2
    assert axe(page) == []
    shot(page, "applied")

    on_disk = node.spec_path.read_text()
    assert "# test node spec" in on_disk and "# the node's name" in on_disk
    written = yaml.safe_load(on_disk)
    assert written["metadata"]["name"] == "renamed-node"
    assert written["spec"]["routing"]["retry"]["maxAttempts"] == 5
    assert written["spec"]["trust"]["mode"] == "private"
    assert generation(node) == 2
    clean(page_log)


def test_a_form_edit_right_after_typing_yaml_keeps_the_typing(
    node: GateNode, page: Page, page_log: PageLog
) -> None:
    open_config(page, node)
    set_editor_text(page, editor_text(page).replace("name: test-node", "name: quick-node"))
    # Within the validation debounce: the form has not followed the YAML yet.
    page.fill("#cfg-spec-routing-retry-initialBackoff", "300ms")
    wait_valid(page)
    document = yaml.safe_load(editor_text(page))
    assert document["metadata"]["name"] == "quick-node"
    assert document["spec"]["routing"]["retry"]["initialBackoff"] == "300ms"
    assert page.locator("#cfg-metadata-name").input_value() == "quick-node"
    clean(page_log)


def test_cli_apply_during_an_edit_is_a_conflict_with_reload_and_their_change(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    open_config(page, node)
    page.fill("#cfg-metadata-name", "mine")
    wait_valid(page)

    theirs = node.tmp / "theirs.yaml"
    theirs.write_text(node.spec_path.read_text().replace("name: test-node", "name: theirs"))
    done = run_gate("apply", "-f", str(theirs))
    assert done.returncode == 0, done.stderr
    # The live event says so at once, and the edit is kept.
    banner = page.locator(".warn-banner")
    banner.wait_for()
    assert "Generation 2 was applied" in banner.inner_text()
    assert page.locator("#cfg-metadata-name").input_value() == "mine"

    apply_from_page(page)
    conflict = page.locator(".bad-banner")
    conflict.wait_for()
    assert "someone else changed the spec first" in conflict.inner_text()
    assert "started from generation 1; the node is now at generation 2" in conflict.inner_text()
    assert "name: theirs" in node.spec_path.read_text()
    conflict.get_by_role("button", name="Show their change").click()
    diff = conflict.locator("pre.diff")
    diff.wait_for()
    their = diff.inner_text()
    assert "-  name: test-node\n+  name: theirs" in their
    assert axe(page) == []
    shot(page, "conflict")

    conflict.get_by_role("button", name="Reload").click()
    dialog = page.locator("dialog.confirm-dialog")
    assert "drops your edits" in dialog.inner_text()
    dialog.get_by_role("button", name="Drop my edits and reload").click()
    page.wait_for_function("() => document.querySelector('#cfg-metadata-name').value === 'theirs'")
    assert "name: theirs" in editor_text(page)
    assert page.locator(".bad-banner").count() == 0
    assert "generation 2" in page.locator(".config-yaml .gen").inner_text()
    assert generation(node) == 2
    clean(page_log)


def test_two_browsers_editing_the_second_to_save_gets_the_conflict(
    node: GateNode, page: Page, other_page: Page, page_log: PageLog
) -> None:
    open_config(page, node)
    open_config(other_page, node)
    page.fill("#cfg-metadata-name", "first")
    other_page.fill("#cfg-metadata-name", "second")
    wait_valid(page)
    wait_valid(other_page)

    apply_from_page(page)
    page.locator(".ok-banner:has-text('Applied as generation 2')").wait_for()
    other_page.locator(".warn-banner").wait_for()
    apply_from_page(other_page)
    other_page.locator(".bad-banner:has-text('Not applied')").wait_for()
    assert yaml.safe_load(node.spec_path.read_text())["metadata"]["name"] == "first"
    assert generation(node) == 2
    clean(page_log)


def test_rollback_from_the_history(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    text = node.rpc("spec.get")["yaml"]
    node.rpc("spec.apply", {"yaml": text.replace("name: test-node", "name: second")})
    open_page_at(page, node, "second")
    rows = page.locator("table.history tbody tr")
    assert rows.count() == 2
    assert "running" in rows.nth(0).inner_text()
    shot(page, "history")

    page.get_by_role("button", name="Roll back to 1").click()
    dialog = page.locator("dialog.confirm-dialog")
    assert "Roll back to generation 1?" in dialog.inner_text()
    assert axe(page) == []
    dialog.get_by_role("button", name="Roll back to 1").click()
    result = page.locator(".ok-banner")
    result.wait_for()
    assert "generation 3 has the spec of generation 1" in result.inner_text()
    page.wait_for_function(
        "() => document.querySelector('#cfg-metadata-name').value === 'test-node'"
    )
    assert page.locator("table.history tbody tr").count() == 3
    assert yaml.safe_load(node.spec_path.read_text())["metadata"]["name"] == "test-node"
    assert generation(node) == 3
    clean(page_log)


def open_page_at(page: Page, node: GateNode, name: str) -> None:
    login(page, node)
    open_page(page, node, "config")
    page.wait_for_selector(f"{EDITOR}:has-text('{name}')")
    page.wait_for_selector("table.history")


def test_a_5_mb_paste_is_refused_and_nothing_is_sent(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot
) -> None:
    before = node.spec_path.read_text()
    sent: list[int] = []
    page.on("request", lambda r: sent.append(len(r.post_data_buffer or b"")))
    open_config(page, node)
    text = editor_text(page)
    page.locator(EDITOR).click()
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.setData("text/plain", "# " + "x".repeat(5 * 1024 * 1024) + "\\n");
            const target = document.querySelector(".editor-host").shadowRoot
                .querySelector(".cm-content");
            target.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data,
                                                              bubbles: true, cancelable: true}));
        }"""
    )
    alert = page.locator("p.error[role=alert]")
    alert.wait_for()
    assert "That paste is 5.0 MiB" in alert.inner_text()
    assert f"at most 1 MiB ({MAX_SPEC_BYTES:,} bytes)" in alert.inner_text()
    assert "nothing was sent" in alert.inner_text()
    assert editor_text(page) == text
    page.wait_for_timeout(600)  # past the validation debounce: still nothing sent
    assert max(sent) < MAX_SPEC_BYTES
    assert node.spec_path.read_text() == before
    assert generation(node) == 1
    shot(page, "too-big")
    clean(page_log)


def test_leaving_with_unsaved_edits_asks_first(
    node: GateNode, page: Page, page_log: PageLog
) -> None:
    open_config(page, node)
    page.fill("#cfg-metadata-name", "unsaved")
    page.locator('.tabs a[href="#/peers"]').click()
    dialog = page.locator("dialog.confirm-dialog")
    dialog.wait_for()
    assert page.evaluate("location.hash") == "#/config"
    dialog.get_by_role("button", name="Stay and keep editing").click()
    assert page.locator("#cfg-metadata-name").input_value() == "unsaved"
    # A hash change no click made (Back, a typed address) is undone and asked about too.
    page.evaluate("location.hash = '#/logs'")
    dialog.wait_for()
    assert page.evaluate("location.hash") == "#/config"
    dialog.get_by_role("button", name="Stay and keep editing").click()
    assert page.locator("#cfg-metadata-name").input_value() == "unsaved"
    page.locator('.tabs a[href="#/peers"]').click()
    dialog.get_by_role("button", name="Drop edits and leave").click()
    page.wait_for_selector('.tabs a[href="#/peers"][aria-current="page"]')
    assert generation(node) == 1
    clean(page_log)


TRICKY: dict[str, Any] = {
    "apiVersion": "gate.hellas.ai/v1",
    "spec": {
        "strings": [
            "true",
            "yes",
            "no",
            "null",
            "",
            "~",
            "1",
            "1.5",
            "0x1f",
            "1:20",
            "2026-01-01",
            "-x",
            "- x",
            "a: b",
            "a #b",
            "x:",
            "'q'",
            '"d"',
            "it's",
            "line\nbreak",
            "tab\there",
            " lead",
            "trail ",
            "#c",
            "@a",
            "*s",
            "&a",
            "!t",
            "|",
            "[a]",
            "{a}",
            "?",
            "=",
            "<<",
            "é ünï",
            "/ip4/127.0.0.1/tcp/1",
            "127.0.0.1:8145",
        ],
        "numbers": [0, 1, -5, 1.5, 1e-07, 1e21, True, False, None],
        "nested": [[1, 2], [], {}, {"a": [{"b": 1, "c": [1]}]}, {"k": {"x": 1}}],
        "empty": {},
    },
}


def test_the_yaml_emitter_and_reader_agree_with_pyyaml(node: GateNode, page: Page) -> None:
    """The form's YAML (ui/editor.js) against PyYAML, the node's own reader and writer: what
    the page writes loads to the same document, and what the node writes reads back."""
    open_config(page, node)
    out = page.evaluate(
        """async ([doc, dumped]) => {
            const editor = await import("/ui/ui/editor.js");
            const read = editor.yamlReader(await editor.loadCodeMirror());
            return {emitted: editor.emitYaml(doc), read: read(dumped)};
        }""",
        [TRICKY, yaml.safe_dump(TRICKY, sort_keys=False, allow_unicode=True)],
    )
    assert yaml.safe_load(out["emitted"]) == TRICKY
    assert json.loads(json.dumps(out["read"])) == TRICKY
    # The node's own rendering of a spec is what the emitter writes, line for line.
    got = node.rpc("spec.get")
    emitted = page.evaluate(
        """async (doc) => (await import("/ui/ui/editor.js")).emitYaml(doc)""", got["document"]
    )
    assert emitted == got["yaml"]


def test_without_the_editor_bundle_a_plain_text_box_still_edits_and_checks(
    node: GateNode, page: Page, axe: Axe
) -> None:
    """CodeMirror failing to load (here: its file refused) leaves a <textarea>: the YAML is
    still checked as you type, and the form says why it waits."""
    page.route("**/ui/vendor/codemirror.js", lambda route: route.abort())
    login(page, node)
    open_page(page, node, "config")
    area = page.locator(".editor-host textarea.yaml-fallback")
    # The box appears before spec.get has answered: wait for the spec in it.
    expect(area).to_have_value(re.compile("name: test-node"), timeout=10_000)
    page.get_by_text("The full editor did not load").wait_for()
    area.fill(area.input_value().replace("name: test-node", "name: Bad_Name"))
    issue = page.locator(".issues li").first
    issue.wait_for()
    assert "metadata.name" in issue.inner_text()
    area.fill(area.input_value().replace("name: Bad_Name", "name: fine"))
    page.wait_for_selector(".check.valid:has-text('Valid')")
    assert "The form needs the full editor" in page.locator("#form-note").inner_text()
    assert page.locator("#cfg-metadata-name").is_disabled()
    assert axe(page) == []
    assert generation(node) == 1
