"""The control-plane commands as a user runs them: `status -w` and `logs -f` following a
live node while another command changes it, `ui`, completion scripts loaded by real
shells, -o json|yaml on every reading command, and examples in every --help."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess

import httpx
import pexpect
import pytest
import yaml

from gate_runner.cli.main import build_parser
from tests.rig import ROOT, GateNode, gate_cmd, run_gate

pytestmark = pytest.mark.e2e


def _apply_invalid(node: GateNode, key: str) -> None:
    """`gate apply` of a spec the node must reject. The node is named by --control and
    GATE_TOKEN: with only -f, the CLI would find the bad file's own error first."""
    bad = node.tmp / "bad.yaml"
    bad.write_text(
        f"apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {{name: x}}\nspec: {{{key}: 1}}\n"
    )
    result = run_gate(
        "apply",
        "-f",
        str(bad),
        "--control",
        f"127.0.0.1:{node.control_port}",
        env={**os.environ, "GATE_TOKEN": node.token},
    )
    assert result.returncode == 2
    assert f"spec.{key}: unknown key" in result.stderr


def _spawn(node: GateNode, *args: str) -> pexpect.spawn:
    command = gate_cmd(*args, "-f" if args[0] != "logs" else "--file", str(node.spec_path))
    return pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(ROOT),
        timeout=20,
        encoding="utf-8",
        dimensions=(60, 200),
        env={**os.environ, "TERM": "xterm"},
    )


def test_status_watch_shows_an_apply_from_another_terminal(node: GateNode) -> None:
    watch = _spawn(node, "status", "-w")
    try:
        watch.expect(r"generation 1 \(observed 1\)")
        watch.expect("watching")
        renamed = node.spec_path.read_text().replace("name: test-node", "name: renamed-node")
        other = node.tmp / "other.yaml"
        other.write_text(renamed)
        applied = run_gate("apply", "-f", str(other))
        assert applied.returncode == 0, applied.stderr
        watch.expect(r"generation 2 applied \(apply\)")
        watch.expect("renamed-node")
    finally:
        watch.terminate(force=True)


def test_status_watch_as_json_lines(node: GateNode) -> None:
    proc = subprocess.Popen(
        gate_cmd("status", "-w", "-o", "json", "-f", str(node.spec_path)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["spec"]["generation"] == 1
        _apply_invalid(node, "x")
        # Other changes may come first (the p2p component finishing its start).
        for _ in range(10):
            after = json.loads(proc.stdout.readline())
            if after["spec"]["lastError"]:
                break
        assert "spec.x" in after["spec"]["lastError"]
    finally:
        proc.kill()
        proc.communicate()


def test_logs_follow_prints_new_records_at_the_level_asked(node: GateNode) -> None:
    logs = _spawn(node, "logs", "-f", "--level", "warning", "-n", "0")
    try:
        logs.expect_exact(pexpect.TIMEOUT, timeout=1)  # nothing old, nothing below warning
        assert "INFO" not in (logs.before or "")
        _apply_invalid(node, "y")
        logs.expect(r"ERROR +gate_runner\.reconcile\.controller: rejected spec")
    finally:
        logs.terminate(force=True)


def test_logs_tail_as_json(node: GateNode) -> None:
    result = run_gate(
        "logs", "--file", str(node.spec_path), "-n", "5", "-o", "json", "--level", "debug"
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert 1 <= len(lines) <= 5
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines)


def test_ui_prints_a_one_time_link_and_opens_no_browser_on_a_server(node: GateNode) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_gate("ui", "-f", str(node.spec_path), env=env)
    assert result.returncode == 0, result.stderr
    (url,) = re.findall(r"http://127\.0\.0\.1:\d+/login\?code=\S+", result.stdout)
    with httpx.Client() as browser:
        assert browser.get(url).status_code == 303
        assert browser.get(url).status_code == 401


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_reading_command_speaks_json_and_yaml(node: GateNode, fmt: str) -> None:
    for command in (
        ["status"],
        ["get"],
        ["history"],
        ["peers", "ls"],
        ["providers", "ls"],
        ["requests", "ls"],
        ["id", "show"],
    ):
        result = run_gate(*command, "-f", str(node.spec_path), "-o", fmt)
        assert result.returncode == 0, (command, result.stderr)
        parsed = json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout)
        assert parsed is not None or command[0] in ("peers", "providers", "requests"), command


def test_changing_commands_print_their_result_as_json(node: GateNode) -> None:
    peer = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
    added = run_gate("peers", "add", "bob", peer, "-f", str(node.spec_path), "-o", "json")
    assert added.returncode == 0, added.stderr
    result = json.loads(added.stdout)
    assert result["changed"] is True and "+" in result["diff"] and "name: bob" in result["diff"]
    assert "# the node's name" in node.spec_path.read_text()  # comments kept
    removed = run_gate("peers", "rm", "bob", "-f", str(node.spec_path), "-o", "yaml")
    assert removed.returncode == 0, removed.stderr
    assert yaml.safe_load(removed.stdout)["generation"] == result["generation"] + 1
    link = run_gate("ui", "--no-browser", "-f", str(node.spec_path), "-o", "json")
    assert json.loads(link.stdout)["url"].startswith("http://127.0.0.1:")


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_every_command_has_examples_in_its_help() -> None:
    leaves = list(_leaves(build_parser()))
    assert len(leaves) > 20
    for path, parser in leaves:
        assert "example" in parser.format_help(), " ".join(path)


def test_bash_completes_commands_subcommands_and_values() -> None:
    script = run_gate("completion", "bash").stdout
    probe = script + (
        'c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _gate; '
        'echo "${COMPREPLY[*]}"; }\n'
        "c gate pe\nc gate peers ''\nc gate status -o ''\nc gate logs --le\n"
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "peers",
        "accept add approve ignore invite ls pending rm test --help -h",
        "table json yaml",
        "--level",
    ]


def test_fish_completes_commands_with_descriptions() -> None:
    script = run_gate("completion", "fish").stdout
    out = subprocess.run(
        ["fish", "-c", 'source; complete -C "gate peers "'],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [line.split("\t")[0] for line in out.stdout.splitlines()]
    assert names == ["accept", "add", "approve", "ignore", "invite", "ls", "pending", "rm", "test"]
    assert "remove a peer" in out.stdout


def test_zsh_loads_the_script_and_registers_gate() -> None:
    script = run_gate("completion", "zsh").stdout
    out = subprocess.run(
        ["zsh", "-c", f"autoload -U compinit && compinit -u\n{script}\nprint -r -- $_comps[gate]"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "_gate" in out.stdout


def test_a_locked_out_cli_says_why(node: GateNode) -> None:
    env = {**os.environ, "GATE_TOKEN": "wrong"}
    for _ in range(10):
        run_gate("status", "-f", str(node.spec_path), env=env)
    result = run_gate("status", "-f", str(node.spec_path))
    assert result.returncode == 1
    assert "too many failed attempts" in result.stderr
