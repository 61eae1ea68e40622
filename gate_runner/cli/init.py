"""`gate init`: its flags, the answers they give (or the wizard's in a terminal, wizard.py),
and the writing: the node's key and a commented gate.yaml, nothing until the answers are
complete."""

from __future__ import annotations

__all__ = ("InitError", "register", "run")

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TextIO

from gate_runner.cli.command import Subparsers
from gate_runner.cli.draft import (
    TRUST_MODES,
    BadAnswer,
    Draft,
    Peer,
    Provider,
    check_dir,
    check_name,
    initial_draft,
    pin_found,
    plan_existing,
    plan_import,
    plan_key,
    render,
    spec_data_dir,
)
from gate_runner.cli.wizard import Declined, Wizard, scan
from gate_runner.errors import GateError
from gate_runner.spec import atomic_write
from gate_runner.spec.model import DEFAULT_API, DEFAULT_DATA_DIR

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


DESCRIPTION: Final = """\
Write a gate.yaml for this machine, and the node's key.

On a terminal this is a wizard: node name and data directory, identity, local engines
(probed now), trust mode and peers, an optional public endpoint, then a review of the YAML
before anything is written. Flags given set the defaults shown in [brackets].

With --non-interactive, or when stdin is not a terminal, nothing is asked and stdin is never
read: the flags and the defaults below are used, and a bad value exits 2 naming its flag.
Nothing is written unless every answer is valid; Ctrl-C exits 130 and end of input exits 1.
"""

EPILOG: Final = f"""\
defaults:
  name        this machine's host name, made a valid name (else my-node)
  data dir    {DEFAULT_DATA_DIR}; a relative path is made absolute
  identity    keep the key already in DIR/identity.pem, else generate one there (0600);
              a key is never overwritten, not even with --force
  engines     discovery on, probing Ollama at 127.0.0.1:11434 and LM Studio at 127.0.0.1:1234
  trust       friends, no peers; no public endpoint; the API on {DEFAULT_API}

examples:
  gate init
  gate init --non-interactive --name alice-laptop --trust friends \\
      --peer bob=<bob's id>@/ip4/203.0.113.7/tcp/41145 --trusted-peer carol=<carol's id>
  gate init -f ~/.config/gate/gate.yaml --import-key old-node.pem --no-discovery \\
      --provider lmstudio=openai,http://127.0.0.1:1234/v1
"""


class InitError(GateError):
    """Raised for input `gate init` cannot use: a flag's value, an existing spec file, a
    directory it cannot write. Nothing has been written; the command exits 2."""


def register(sub: Subparsers) -> None:
    """Add `gate init` to the `gate` parser."""
    p = sub.add_parser(
        "init",
        help="write a gate.yaml: the setup wizard, or flags with --non-interactive",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f",
        "--file",
        default="gate.yaml",
        metavar="PATH",
        help="where to write the spec (default ./gate.yaml)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing spec file (kept as PATH.bak)"
    )
    p.add_argument(
        "--non-interactive",
        action="store_true",
        help="ask nothing and never read stdin: use the flags and defaults",
    )
    p.add_argument("-y", "--yes", action="store_true", help="write without asking at the review")

    node = p.add_argument_group("node")
    node.add_argument("--name", help="metadata.name: lowercase letters, digits and '-'")
    node.add_argument("--data-dir", metavar="DIR", help="spec.dataDir: the key, state.db, certs/")
    node.add_argument(
        "--listen-api", metavar="HOST:PORT", help=f"the OpenAI-compatible API ({DEFAULT_API})"
    )
    node.add_argument(
        "--api-key-env",
        action="append",
        default=[],
        metavar="VAR",
        help="env var holding an API key clients must send (repeatable); "
        "needed for a --listen-api that is not loopback",
    )

    identity = p.add_argument_group("identity (default: keep DIR/identity.pem, else generate)")
    key = identity.add_mutually_exclusive_group()
    key.add_argument(
        "--import-key",
        metavar="PEM",
        help="copy this PKCS#8 Ed25519 key (e.g. from `gate id export`) to DIR/identity.pem",
    )
    key.add_argument(
        "--key-file", metavar="PATH", help="use this key file where it is (it must be 0600)"
    )

    engines = p.add_argument_group("engines")
    engines.add_argument("--no-discovery", action="store_true", help="turn discovery off")
    engines.add_argument(
        "--discovery-target",
        action="append",
        default=[],
        metavar="[NAME=]KIND,URL",
        help="probe here instead of the default targets (repeatable; KIND ollama or openai)",
    )
    engines.add_argument(
        "--pin-discovered",
        action="store_true",
        help="add the engines found now as static providers",
    )
    engines.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="[NAME=]KIND,URL",
        help="a static provider (repeatable): lmstudio=openai,http://127.0.0.1:1234/v1, "
        "ollama,http://127.0.0.1:11434 or gguf=llamacpp,~/models/qwen.gguf",
    )

    trust = p.add_argument_group("trust and peers")
    trust.add_argument(
        "--trust", choices=TRUST_MODES, help="who may use this node's engines (default friends)"
    )
    trust.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=ID[@ADDR,...]",
        help="a friend's node whose engines this node may use (repeatable): ID as "
        "`gate id show` prints it, optional multiaddrs",
    )
    trust.add_argument(
        "--trusted-peer",
        action="append",
        default=[],
        metavar="NAME=ID[@ADDR,...]",
        help="a friend's node that may also use this node's engines (repeatable; friends "
        "mode writes a trust.allow rule for it)",
    )

    public = p.add_argument_group("public endpoint (off unless a relay is given)")
    public.add_argument(
        "--public-relay",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="a relay, ending in /p2p/<relay id>; turns the public endpoint on (repeatable)",
    )
    public.add_argument("--acme-email", metavar="EMAIL", help="ACME contact for expiry notices")
    public.add_argument(
        "--acme-directory", metavar="URL", help="ACME directory (default: Let's Encrypt)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    interactive = not args.non_interactive and sys.stdin.isatty()
    if not args.non_interactive and not interactive:
        _warn(
            "stdin is not a terminal, so nothing is asked: using the flags and defaults "
            "(--non-interactive says so and silences this)"
        )
    try:
        path = _target(args)
        draft = _from_flags(args)
        if interactive:
            draft, text = Wizard(args, out=out).run(draft)
        else:
            draft = _complete(args, draft, out)
            text = render(draft, spec_file=args.file)
        _write(path, text, draft, force=args.force, spec_file=args.file)
    except InitError as e:
        _warn(str(e))
        return EXIT_INVALID
    except Declined as e:
        _warn(str(e))
        return EXIT_FAILURE
    except EOFError:
        _warn("\ninput ended: nothing written")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _warn("\ninterrupted: nothing written")
        return EXIT_INTERRUPTED
    _next_steps(draft, args.file, out, summary=not interactive)
    return EXIT_OK


def _warn(text: str) -> None:
    lead = "\n" if text.startswith("\n") else ""
    print(f"{lead}gate init: {text.lstrip()}", file=sys.stderr, flush=True)


@contextmanager
def _blame(flag: str | None, value: str | None = None) -> Iterator[None]:
    """Turn a BadAnswer into an InitError naming the flag (and the value) it came from."""
    try:
        yield
    except BadAnswer as e:
        where = "" if flag is None else f"{flag} {value}: " if value is not None else f"{flag}: "
        raise InitError(f"{where}{e}") from None


# --- from flags --------------------------------------------------------------------------------


def _target(args: argparse.Namespace) -> Path:
    """The spec file to write, refused now rather than after every question is answered."""
    path = Path(args.file).expanduser()
    if path.is_dir():
        raise InitError(
            f"{args.file} is a directory", hint=f"give a file, e.g. -f {path}/gate.yaml"
        )
    if os.path.lexists(path) and not args.force:
        raise InitError(
            f"{args.file} already exists",
            hint=f"pass --force to replace it, keeping the old one as {path.name}.bak; "
            "or -f to write elsewhere",
        )
    with _blame("-f"):
        check_dir(Path(os.path.abspath(path.parent)), what="the spec file's directory")
    return path


def _from_flags(args: argparse.Namespace) -> Draft:
    """The draft the flags describe, each value checked; the key and probing come later."""
    draft = initial_draft()
    if args.name is not None:
        with _blame("--name"):
            draft = draft.checked(name=check_name(args.name))
    if args.data_dir is not None:
        with _blame("--data-dir"):
            data_dir = spec_data_dir(args.data_dir)
            check_dir(Path(data_dir).expanduser(), what="the data directory")
            draft = draft.checked(data_dir=data_dir)
    for env in args.api_key_env:
        with _blame("--api-key-env", env):
            draft = draft.checked(api_key_envs=(*draft.api_key_envs, env))
    if args.listen_api is not None:
        with _blame("--listen-api"):
            draft = draft.checked(listen_api=args.listen_api)
    draft = draft.checked(discovery=not args.no_discovery)
    targets: list[Provider] = []
    for text in args.discovery_target:
        with _blame("--discovery-target", text):
            targets.append(Provider.parse(text, kinds=("ollama", "openai")))
            draft = draft.checked(targets=tuple(targets))
    for text in args.provider:
        with _blame("--provider", text):
            draft = draft.checked(static=(*draft.static, Provider.parse(text)))
    if args.trust is not None:
        draft = draft.checked(trust=args.trust)
    for flag, texts in (("--peer", args.peer), ("--trusted-peer", args.trusted_peer)):
        for text in texts:
            with _blame(flag, text):
                peer = Peer.parse(text)
                trusted = (peer.name,) if flag == "--trusted-peer" else ()
                draft = draft.checked(
                    peers=(*draft.peers, peer), trusted=(*draft.trusted, *trusted)
                )
    for relay in args.public_relay:
        with _blame("--public-relay", relay):
            draft = draft.checked(relays=(*draft.relays, relay))
    for flag, value, field in (
        ("--acme-email", args.acme_email, "acme_email"),
        ("--acme-directory", args.acme_directory, "acme_directory"),
    ):
        if value is None:
            continue
        if not draft.relays:
            raise InitError(
                f"{flag} needs --public-relay",
                hint="the certificate is ordered through a relay: name one with "
                "--public-relay /dns4/RELAY/tcp/41146/p2p/<relay id>",
            )
        with _blame(flag):
            draft = draft.checked(**{field: value})
    return draft


def _complete(args: argparse.Namespace, draft: Draft, out: TextIO) -> Draft:
    """Non-interactive: the key from the flags, then the probe (shown) and any pinning."""
    if args.import_key is not None:
        with _blame("--import-key"):
            key = plan_import(Path(args.import_key), draft.data_path)
    elif args.key_file is not None:
        with _blame("--key-file"):
            key = plan_existing(Path(args.key_file), draft.data_path)
    else:
        with _blame(None):
            key = plan_key(draft.data_path)
    draft = draft.checked(key=key)
    if not (draft.discovery or args.pin_discovered):
        return draft
    print("Looking for engines:", file=out)
    probes = scan(draft.targets, out)
    if args.pin_discovered:
        if not any(p.found for p in probes):
            _warn("--pin-discovered: no engine answered, so none was pinned")
        with _blame("--pin-discovered"):
            draft = pin_found(draft, probes)
    return draft


# --- writing -----------------------------------------------------------------------------------


def _write(path: Path, text: str, draft: Draft, *, force: bool, spec_file: str) -> None:
    """The key first (never over an existing one), then the spec; a failure takes back a key
    written here, so an error leaves the disk as it was."""
    key = draft.key
    if key is None:  # both modes plan a key before rendering
        raise InitError("no key was chosen")
    if os.path.lexists(path) and not force:
        raise InitError(f"{spec_file} already exists", hint="pass --force to replace it")
    created = False
    try:
        if key.writes:
            try:
                key.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise InitError(f"cannot create {key.path.parent}: {e.strerror}") from e
            try:
                key.identity.save(key.path)
            except GateError as e:
                raise InitError(str(e)) from e
            created = True
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if force and path.is_file():
                shutil.copyfile(path, path.with_name(path.name + ".bak"))
            atomic_write(path, text)
        except OSError as e:
            raise InitError(f"cannot write {spec_file}: {e.strerror}") from e
    except BaseException:
        if created:
            key.path.unlink(missing_ok=True)
        raise


def _next_steps(draft: Draft, spec_file: str, out: TextIO, *, summary: bool) -> None:
    key = draft.key
    assert key is not None
    # Quoted for a shell, but a leading ~/ is left for the shell to expand.
    home, rest = ("~/", spec_file[2:]) if spec_file.startswith("~/") else ("", spec_file)
    quoted = home + shlex.quote(rest)
    wrote = f"Wrote {spec_file}"
    if key.source == "new":
        wrote += f" and a new key, {key.path} (0600)"
    elif key.source == "import":
        wrote += f" and the imported key, {key.path} (0600)"
    lines = [wrote + ".", f"Node {draft.name}, peer id {key.peer_id}"]
    if summary:
        names = ", ".join(t.name for t in draft.targets)
        engines = f"on ({names})" if draft.discovery else "off"
        static = ", ".join(p.name for p in draft.static) or "none"
        peers = (
            ", ".join(
                p.name + (" (may use this node)" if draft.trusts(p.name) else "")
                for p in draft.peers
            )
            or "none"
        )
        public = ", ".join(draft.relays) if draft.relays else "off"
        lines += [
            f"  discovery {engines}; static providers {static}",
            f"  trust {draft.trust}; peers {peers}; public endpoint {public}",
        ]
    commands = [
        (f"gate up -f {quoted}", "start the node (-d runs it in the background)"),
        (f"gate status -f {quoted}", "its components, engines and peers"),
    ]
    width = max(len(c) for c, _ in commands)
    lines += ["", "Next:"] + [f"  {c.ljust(width)}  {what}" for c, what in commands]
    lines.append(f"Friends add this node with: gate peers add {draft.name} {key.peer_id}")
    print("\n".join(lines), file=out, flush=True)
