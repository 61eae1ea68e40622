"""The interactive `gate init` in a terminal: each step asked, checked and re-asked when bad,
the engine probe shown as it runs, and the YAML reviewed before anything is written."""

from __future__ import annotations

__all__ = ("Declined", "Wizard", "scan")

import argparse
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, TextIO, TypeVar

import anyio

from gate_runner.cli.draft import (
    TRUST_MODES,
    BadAnswer,
    Draft,
    KeyPlan,
    Peer,
    Probe,
    Provider,
    check_dir,
    check_name,
    pin_found,
    plan_existing,
    plan_import,
    plan_key,
    probe_all,
    render,
    spec_data_dir,
    split_list,
)
from gate_runner.errors import GateError
from gate_runner.identity import normalise_peer_id

_STEPS: Final = 6
_SPINNER: Final = "|/-\\"
_CLEAR_LINE: Final = "\r\x1b[K"

T = TypeVar("T")


class Declined(GateError):
    """Raised when the answer at the review is no: nothing is written; the command exits 1."""


def scan(targets: Sequence[Provider], out: TextIO) -> list[Probe]:
    """Probe the targets at once: a spinner while waiting on a terminal, a line per result."""
    tty = out.isatty()

    async def scan_all() -> list[Probe]:
        pending = [t.name for t in targets]

        def show(probe: Probe) -> None:
            pending.remove(probe.target.name)
            out.write(f"{_CLEAR_LINE if tty else ''}  {probe.line()}\n")
            out.flush()

        async with anyio.create_task_group() as tg:
            if tty:
                tg.start_soon(_spin, out, pending)
            probes = await probe_all(targets, on_result=show)
            tg.cancel_scope.cancel()
        if tty:
            out.write(_CLEAR_LINE)
            out.flush()
        return probes

    return anyio.run(scan_all, backend="trio")


async def _spin(out: TextIO, pending: list[str]) -> None:
    for frame in itertools.cycle(_SPINNER):
        if pending:
            out.write(f"{_CLEAR_LINE}  {frame} probing {', '.join(pending)}")
            out.flush()
        await anyio.sleep(0.1)


def _parse_mode(answer: str) -> str:
    matches = [m for m in TRUST_MODES if m.startswith(answer.strip().lower())] if answer else []
    if len(matches) != 1:
        raise BadAnswer(f"{answer!r}: answer private, friends or public")
    return matches[0]


class Wizard:
    """The interactive steps. Each answer is checked as it is given and re-asked when bad;
    the flags' values are the defaults."""

    def __init__(self, args: argparse.Namespace, *, out: TextIO) -> None:
        self.args = args
        self.out = out

    # -- asking --

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, question: str, default: str = "") -> str:
        shown = f" [{default}]" if default else ""
        answer = input(f"{question}{shown}: ").strip()
        return answer or default

    def ask_valid(self, question: str, default: str, parse: Callable[[str], T]) -> T:
        while True:
            try:
                return parse(self.ask(question, default))
            except BadAnswer as e:
                self.say(f"  {e}")

    def confirm(self, question: str, default: bool) -> bool:
        while True:
            answer = input(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.say("  answer y or n")

    def choose(self, question: str, choices: Mapping[str, str], default: str) -> str:
        for number, text in choices.items():
            self.say(f"  {number}) {text}")
        while True:
            answer = self.ask(question, default)
            if answer in choices:
                return answer
            self.say(f"  answer {', '.join(list(choices)[:-1])} or {list(choices)[-1]}")

    def step(self, number: int, title: str) -> None:
        self.say()
        self.say(f"[{number}/{_STEPS}] {title}")

    # -- the steps --

    def run(self, draft: Draft) -> tuple[Draft, str]:
        self.say("Gate setup")
        self.say(
            f"This writes {self.args.file}, the spec of a Gate node: it serves your local\n"
            "inference engines to you and to your friends' nodes. Press Enter to take the\n"
            "[default]. Nothing is written before the review at the end; Ctrl-C quits."
        )
        draft = self.node(draft)
        draft = self.identity(draft)
        draft = self.engines(draft)
        draft = self.trust(draft)
        draft = self.public(draft)
        return draft, self.review(draft)

    def node(self, draft: Draft) -> Draft:
        self.step(1, "Node")

        def name(answer: str) -> Draft:
            return draft.checked(name=check_name(answer))

        draft = self.ask_valid("Node name, as peers see it", draft.name, name)
        self.say("The data directory holds the key, the request log and the spec history.")

        def data_dir(answer: str) -> Draft:
            text = spec_data_dir(answer)
            check_dir(Path(text).expanduser(), what="the data directory")
            return draft.checked(data_dir=text)

        return self.ask_valid("Data directory", draft.data_dir, data_dir)

    def identity(self, draft: Draft) -> Draft:
        self.step(2, "Identity")
        self.say("The node's Ed25519 key. Peers know this node by the id derived from it.")
        held = draft.data_path / "identity.pem"
        first = (
            f"keep the key already in {held}"
            if os.path.lexists(held)
            else f"generate a new key (saved 0600 as {held})"
        )
        choices = {
            "1": first,
            "2": "import a PEM key file (PKCS#8 Ed25519, e.g. from `gate id export`)",
            "3": "use an existing key file where it is",
        }
        defaults = {"2": self.args.import_key or "", "3": self.args.key_file or ""}
        default = "2" if self.args.import_key else "3" if self.args.key_file else "1"
        plans: dict[str, Callable[[str], KeyPlan]] = {
            "1": lambda _: plan_key(draft.data_path),
            "2": lambda answer: plan_import(Path(answer), draft.data_path),
            "3": lambda answer: plan_existing(Path(answer), draft.data_path),
        }
        questions = {"2": "PEM file to import", "3": "Key file"}
        key: KeyPlan | None = None
        while key is None:
            choice = self.choose("Identity", choices, default)
            answer = ""
            if choice in questions:
                answer = self.ask(f"{questions[choice]} (empty: back)", defaults[choice])
                if not answer:
                    continue
            try:
                key = plans[choice](answer)
            except BadAnswer as e:
                self.say(f"  {e}")
                defaults[choice] = ""  # a preset that failed is no longer offered
                default = choice
        draft = draft.checked(key=key)
        when = f"; {key.path} is written when you confirm" if key.writes else ""
        self.say(f"  peer id {key.peer_id}{when}")
        return draft

    def engines(self, draft: Draft) -> Draft:
        self.step(3, "Engines")
        self.say("Looking for engines on this machine:")
        probes = scan(draft.targets, self.out)
        found = [p.target.name for p in probes if p.found]
        if not found:
            self.say(
                "No engine answered. Start Ollama or LM Studio: with discovery on, the node\n"
                "finds it within 30s."
            )
        keep = self.confirm(
            "Keep discovery on (the node probes these every 30s and uses what answers)?",
            draft.discovery,
        )
        draft = draft.checked(discovery=keep)
        if found and self.confirm(
            f"Pin {', '.join(found)} as static provider(s), used even with discovery off?",
            self.args.pin_discovered or not keep,
        ):
            try:
                draft = pin_found(draft, probes)
            except BadAnswer as e:
                self.say(f"  {e}")
        for p in draft.static:
            self.say(f"  static provider {p.name}: {p.kind} at {p.location}")
        self.say(
            "Add an engine by hand as [NAME=]KIND,URL, e.g. lmstudio=openai,http://127.0.0.1:1234/v1\n"
            "(kinds: ollama, openai; llamacpp takes a GGUF path instead of a URL)."
        )
        while answer := self.ask("Another engine (empty when done)"):
            try:
                draft = draft.checked(static=(*draft.static, Provider.parse(answer)))
            except BadAnswer as e:
                self.say(f"  {e}")
        return draft

    def trust(self, draft: Draft) -> Draft:
        self.step(4, "Trust and peers")
        self.say("Who may use this node's engines?")
        self.say("  private  nobody but you")
        self.say("  friends  the peers you list next and say yes to")
        self.say("  public   any peer that connects")
        mode = self.ask_valid("Trust mode", draft.trust, _parse_mode)
        draft = draft.checked(trust=mode)
        self.say(
            "Peers are friends' nodes: a local name, and the id their node prints with\n"
            "`gate id show`. Their engines are then reachable as model@<peer name>.\n"
            "Using a friend's engines and letting the friend use yours are two choices."
        )
        for peer in draft.peers:
            shares = ", may use this node" if draft.trusts(peer.name) else ""
            self.say(f"  {peer.name}  {peer.id}  (from the command line{shares})")
        while name := self.ask("Peer name (empty when done)"):
            try:
                check_name(name)
                if any(p.name == name for p in draft.peers):
                    raise BadAnswer(f"{name!r} is already a peer")
            except BadAnswer as e:
                self.say(f"  {e}")
                continue
            draft = self.peer(draft, name)
        return draft

    def peer(self, draft: Draft, name: str) -> Draft:
        peer_id = self.ask_valid(f"  {name}'s id", "", self._peer_id(draft))

        def addrs(answer: str) -> Draft:
            peer = Peer(name, peer_id, split_list(answer))
            return draft.checked(peers=(*draft.peers, peer))

        added = self.ask_valid(
            f"  {name}'s multiaddrs, comma-separated (empty: {name} dials in)", "", addrs
        )
        if added.trust == "friends" and self.confirm(
            f"  May {name} use this node's engines?", False
        ):
            added = added.checked(trusted=(*added.trusted, name))
        shares = "may use this node" if added.trusts(name) else "may not use this node"
        self.say(f"  added {name} ({peer_id}); {name} {shares}")
        return added

    @staticmethod
    def _peer_id(draft: Draft) -> Callable[[str], str]:
        def parse(answer: str) -> str:
            if not answer:
                raise BadAnswer("the id is needed: ask your friend for `gate id show`")
            try:
                peer_id = normalise_peer_id(answer)
            except ValueError as e:
                raise BadAnswer(str(e)) from None
            if draft.key is not None and peer_id == draft.key.peer_id:
                raise BadAnswer("that is this node's own id")
            for peer in draft.peers:
                if peer.id == peer_id:
                    raise BadAnswer(f"that is the id of {peer.name}, already a peer")
            return peer_id

        return parse

    def public(self, draft: Draft) -> Draft:
        self.step(5, "Public endpoint (optional)")
        self.say(
            "A public HTTPS name for this node, through relays that forward TLS they cannot\n"
            "read; the certificate is ordered by this node. It needs a relay's multiaddr."
        )
        if not self.confirm("Publish this node through a relay?", bool(draft.relays)):
            return draft.checked(relays=(), acme_email=None, acme_directory=None)
        for relay in draft.relays:
            self.say(f"  relay {relay}  (from --public-relay)")
        while True:
            first = not draft.relays
            question = (
                "Relay multiaddr, ending in /p2p/<relay id>"
                if first
                else "Another relay (empty when done)"
            )
            answer = self.ask(question)
            if not answer:
                if first:
                    self.say("  no relay given: the public endpoint stays off")
                    return draft.checked(relays=(), acme_email=None, acme_directory=None)
                break
            try:
                draft = draft.checked(relays=(*draft.relays, answer))
            except BadAnswer as e:
                self.say(f"  {e}")

        def email(answer: str) -> Draft:
            return draft.checked(acme_email=answer or None)

        return self.ask_valid(
            "ACME contact email for certificate notices (optional)",
            draft.acme_email or "",
            email,
        )

    def review(self, draft: Draft) -> str:
        self.step(6, "Review")
        text = render(draft, spec_file=self.args.file)
        self.say(f"--- {self.args.file}")
        self.out.write(text)
        self.say("---")
        key = draft.key
        also = f" and the key {key.path}" if key is not None and key.writes else ""
        if not self.args.yes and not self.confirm(f"Write {self.args.file}{also}?", False):
            raise Declined("nothing written")
        return text
