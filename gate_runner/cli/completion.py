"""Shell completion scripts for bash, zsh and fish, generated from the argparse tree so
they never fall out of step with the commands."""

from __future__ import annotations

__all__ = ("register", "script")

import argparse
import sys
from collections.abc import Iterator
from functools import partial

from gate_runner.cli.command import EXIT_OK, Subparsers, add


def register(sub: Subparsers, *, root: argparse.ArgumentParser) -> None:
    """Add `gate completion`, which prints the script for ``root``, the whole `gate` parser."""
    completion = add(
        sub,
        "completion",
        partial(_run, root),
        "print a shell completion script",
        [
            "gate completion bash > ~/.local/share/bash-completion/completions/gate",
            "gate completion zsh > ~/.zfunc/_gate    # with fpath+=~/.zfunc",
            "gate completion fish > ~/.config/fish/completions/gate.fish",
        ],
        (),
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])


def _run(root: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    sys.stdout.write(script(root, args.shell))
    return EXIT_OK


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        flag
        for action in parser._actions
        for flag in action.option_strings
        if not isinstance(action, argparse._SubParsersAction)
    )


def _choices(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Options with a fixed set of values, e.g. -o -> table json yaml."""
    found = {}
    for action in parser._actions:
        if action.choices and action.option_strings:
            for flag in action.option_strings:
                found[flag] = [str(c) for c in action.choices]
    return found


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for name, child in _subcommands(parser).items():
        yield from _walk(child, (*path, name))


def _positional_choices(parser: argparse.ArgumentParser) -> list[str]:
    return [
        str(c)
        for action in parser._actions
        if not action.option_strings
        and action.choices
        and not isinstance(action, argparse._SubParsersAction)
        for c in action.choices
    ]


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    if shell == "bash":
        return _bash(parser)
    if shell == "zsh":
        return "#compdef gate\nautoload -U bashcompinit && bashcompinit\n" + _bash(parser)
    return _fish(parser)


def _bash(parser: argparse.ArgumentParser) -> str:
    cases = []
    for path, node in _walk(parser):
        words = sorted(_subcommands(node)) + _positional_choices(node) + _options(node)
        values = "".join(
            f'            {flag}) COMPREPLY=($(compgen -W "{" ".join(vals)}" -- "$cur"))'
            "; return;;\n"
            for flag, vals in sorted(_choices(node).items())
        )
        cases.append(
            f'        "{" ".join(path)}")\n'
            f'          case "$prev" in\n{values}'
            f"            -f|--file|--data-dir|--key-file|--import-key) "
            f'COMPREPLY=($(compgen -f -- "$cur")); return;;\n'
            f"          esac\n"
            f'          COMPREPLY=($(compgen -W "{" ".join(words)}" -- "$cur"));;\n'
        )
    return (
        "# bash completion for gate (gate completion bash)\n"
        "_gate() {\n"
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"\n'
        "    local path=() word\n"
        '    for word in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do\n'
        '        case "$word" in -*) ;; *) local try="${path[*]} $word"; try="${try# }"\n'
        '            if _gate_known "$try"; then path+=("$word"); fi;; esac\n'
        "    done\n"
        '    case "${path[*]}" in\n' + "".join(cases) + "    esac\n"
        "}\n"
        "_gate_known() {\n"
        '    case "$1" in\n'
        + "".join(f'        "{" ".join(p)}") return 0;;\n' for p, _ in _walk(parser) if p)
        + "    esac\n    return 1\n}\n"
        "complete -o default -F _gate gate\n"
    )


def _fish(parser: argparse.ArgumentParser) -> str:
    lines = ["# fish completion for gate (gate completion fish)", "complete -c gate -f"]
    for path, node in _walk(parser):
        subs = _subcommands(node)
        if path:
            condition = f"__fish_seen_subcommand_from {path[-1]}"
            if len(path) > 1:
                condition = f"__fish_seen_subcommand_from {path[-2]}; and {condition}"
        else:
            condition = "__fish_use_subcommand"
        for name, child in sorted(subs.items()):
            description = (child.description or "").split("\n")[0].replace("'", "\\'")[:80]
            lines.append(f"complete -c gate -n '{condition}' -a {name} -d '{description}'")
        if not path:
            continue
        choices = _choices(node)
        for action in node._actions:
            longs = [f for f in action.option_strings if f.startswith("--")]
            shorts = [f for f in action.option_strings if not f.startswith("--")]
            if not longs and not shorts:
                continue
            flags = " ".join(
                [f"-l {f[2:]}" for f in longs] + [f"-s {f[1:]}" for f in shorts if len(f) == 2]
            )
            extra = ""
            values = choices.get(action.option_strings[0])
            if values:
                extra = f" -x -a '{' '.join(values)}'"
            elif action.dest in ("file", "pem") or "dir" in action.dest:
                extra = " -r -F"
            lines.append(f"complete -c gate -n '{condition}' {flags}{extra}")
    return "\n".join(lines) + "\n"
