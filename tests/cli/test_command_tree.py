"""The whole `gate` command tree, every command with its flags, help, defaults and examples,
against the recorded tree in command_tree.json: a refactor of the CLI must leave it as it was.

A deliberate change to a command regenerates the record: `python -m tests.cli.test_command_tree`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gate_runner.cli.main import build_parser

RECORD = Path(__file__).with_name("command_tree.json")


def _name(value: Any) -> Any:
    """Types and formatter classes by name; every other value as JSON can hold it."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_name(v) for v in value]
    return getattr(value, "__name__", repr(value))


def _action(action: argparse.Action) -> dict[str, Any]:
    return {
        "kind": type(action).__name__,
        "flags": list(action.option_strings),
        "dest": action.dest,
        "nargs": _name(action.nargs),
        "const": _name(action.const),
        "default": _name(action.default),
        "type": _name(action.type),
        "choices": None
        if action.choices is None or isinstance(action, argparse._SubParsersAction)
        else [str(c) for c in action.choices],
        "required": action.required,
        "help": action.help,
        "metavar": _name(action.metavar),
    }


def _parser(parser: argparse.ArgumentParser) -> dict[str, Any]:
    # The command function itself is left out: the tree records what a user sees and types.
    defaults = {k: _name(v) for k, v in sorted(parser._defaults.items()) if k != "func"}
    subs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return {
        "prog": parser.prog,
        "description": parser.description,
        "epilog": parser.epilog,
        "formatter": type(parser.formatter_class).__name__
        if not isinstance(parser.formatter_class, type)
        else parser.formatter_class.__name__,
        "has_func": "func" in parser._defaults,
        "defaults": defaults,
        "actions": [_action(a) for a in parser._actions],
        "groups": [
            {
                "title": g.title,
                "description": g.description,
                "dests": [a.dest for a in g._group_actions],
            }
            for g in parser._action_groups
        ],
        "exclusive": [
            [a.dest for a in g._group_actions] for g in parser._mutually_exclusive_groups
        ],
        "commands": None
        if subs is None
        else {
            name: {
                "help": next((c.help for c in subs._choices_actions if c.dest == name), None),
                **_parser(child),
            }
            for name, child in subs.choices.items()
        },
    }


def command_tree() -> dict[str, Any]:
    return _parser(build_parser())


def test_the_command_tree_is_as_recorded() -> None:
    recorded = json.loads(RECORD.read_text())
    tree = json.loads(json.dumps(command_tree()))
    assert list(tree["commands"]) == list(recorded["commands"])
    for name in recorded["commands"]:
        assert tree["commands"][name] == recorded["commands"][name], name
    assert tree == recorded


if __name__ == "__main__":
    RECORD.write_text(json.dumps(command_tree(), indent=1) + "\n")
