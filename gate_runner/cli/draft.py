"""What `gate init` builds, without asking anything: the draft spec (every answer checked by the
spec loader's own rules), where the key comes from, the engine probe, and the commented YAML.
"""

from __future__ import annotations

__all__ = (
    "TRUST_MODES",
    "BadAnswer",
    "Draft",
    "KeyPlan",
    "Peer",
    "Probe",
    "Provider",
    "check_name",
    "check_dir",
    "default_name",
    "initial_draft",
    "plan_existing",
    "plan_import",
    "plan_key",
    "pin_found",
    "plan_new",
    "probe_all",
    "render",
    "spec_data_dir",
    "split_list",
)

import os
import re
import socket
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import yaml

from gate_runner.errors import GateError, SpecError, SpecIssue
from gate_runner.identity import Identity
from gate_runner.spec import NODE, ProviderSpec, canonical_yaml, load_spec
from gate_runner.spec.model import (
    DEFAULT_API,
    DEFAULT_CONTROL,
    DEFAULT_DATA_DIR,
    DEFAULT_DISCOVERY_TARGETS,
    DEFAULT_KEY_FILE,
    DEFAULT_P2P,
    PROVIDER_TIMEOUTS,
)
from gate_runner.spec.validate import load_schema

API_VERSION: Final = "gate.hellas.ai/v1"
TRUST_MODES: Final = ("private", "friends", "public")
DISCOVERY_INTERVAL: Final = "30s"
# An Ed25519 PKCS#8 PEM is 119 bytes; a bigger file is not read whole (identity/keys.py agrees).
_MAX_PEM: Final = 64 * 1024
_SHOWN_MODELS: Final = 3


class BadAnswer(ValueError):
    """Raised when one answer (a prompt's or a flag's value) cannot be used; says why and how."""


# --- the pieces of a draft ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Provider:
    """A static provider or a discovery target; ``location`` is the URL (the GGUF path for
    llamacpp)."""

    name: str
    kind: str  # "ollama" | "openai" | "llamacpp"
    location: str

    def to_dict(self) -> dict[str, str]:
        key = "model" if self.kind == "llamacpp" else "url"
        return {"name": self.name, "kind": self.kind, key: self.location}

    @classmethod
    def parse(
        cls, text: str, *, kinds: Sequence[str] = ("ollama", "openai", "llamacpp")
    ) -> Provider:
        """``[NAME=]KIND,URL`` (``KIND,PATH`` for llamacpp); the name defaults to the kind."""
        head, sep, tail = text.strip().partition("=")
        # An "=" after the first comma belongs to the URL (a query string), not to a name.
        name, rest = (head, tail) if sep and "," not in head else ("", text.strip())
        kind, comma, location = (part.strip() for part in rest.partition(","))
        if not comma or not kind or not location:
            raise BadAnswer(
                f"{text!r} is not [NAME=]KIND,URL (e.g. lmstudio=openai,http://127.0.0.1:1234/v1)"
            )
        if kind not in kinds:
            raise BadAnswer(f"unknown kind {kind!r} in {text!r} (kinds: {', '.join(kinds)})")
        return cls(name=name.strip() or kind, kind=kind, location=location)


DEFAULT_TARGETS: Final = tuple(Provider(t.name, t.kind, t.url) for t in DEFAULT_DISCOVERY_TARGETS)


@dataclass(frozen=True, slots=True)
class Peer:
    """A friend's node: a local name, its id and the multiaddrs to dial it at."""

    name: str
    id: str  # the 12D3KooW... form once checked
    addrs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "id": self.id}
        if self.addrs:
            entry["addrs"] = list(self.addrs)
        return entry

    @classmethod
    def parse(cls, text: str) -> Peer:
        """``NAME=ID[@ADDR[,ADDR...]]``; only the syntax is checked here."""
        name, sep, rest = text.strip().partition("=")
        peer_id, _, addrs = rest.partition("@")
        if not sep or not name.strip() or not peer_id.strip():
            raise BadAnswer(f"{text!r} is not NAME=ID[@ADDR,...] (e.g. bob=12D3KooW...)")
        return cls(name.strip(), peer_id.strip(), split_list(addrs))


def split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """Where the node's key comes from; ``writes`` says whether `gate init` saves it to ``path``."""

    identity: Identity
    source: Literal["new", "import", "existing"]
    path: Path  # the key file: to be written, or already there
    key_file: str  # spec.identity.keyFile: "identity.pem" in dataDir, else an absolute path

    @property
    def writes(self) -> bool:
        return self.source != "existing"

    @property
    def peer_id(self) -> str:
        return self.identity.node_id.peer_id


def _default_key_path(data_dir: Path) -> Path:
    return data_dir / DEFAULT_KEY_FILE


def _load_key(path: Path) -> Identity:
    try:
        return Identity.load(path)
    except GateError as e:
        raise BadAnswer(str(e)) from e


def plan_new(data_dir: Path) -> KeyPlan:
    path = _default_key_path(data_dir)
    if os.path.lexists(path):
        raise BadAnswer(
            f"{path} already holds a key: keep it, or choose another data directory "
            "(a key is never overwritten; it is the node's identity)"
        )
    return KeyPlan(Identity.generate(), "new", path, DEFAULT_KEY_FILE)


def plan_key(data_dir: Path) -> KeyPlan:
    """The default: keep the key the data directory already holds, else generate one."""
    path = _default_key_path(data_dir)
    if os.path.lexists(path):
        return KeyPlan(_load_key(path), "existing", path, DEFAULT_KEY_FILE)
    return plan_new(data_dir)


def plan_import(pem: Path, data_dir: Path) -> KeyPlan:
    """Copy the key in ``pem`` (PKCS#8 Ed25519) into dataDir/identity.pem at write time."""
    pem = pem.expanduser()
    try:
        with pem.open("rb") as f:
            data = f.read(_MAX_PEM + 1)
    except OSError as e:
        raise BadAnswer(f"cannot read {pem}: {e.strerror}") from e
    if len(data) > _MAX_PEM:
        raise BadAnswer(f"{pem} is too large to be a key file")
    try:
        identity = Identity.from_pem(data)
    except GateError as e:
        raise BadAnswer(f"{pem}: {e}") from e
    path = _default_key_path(data_dir)
    if os.path.lexists(path):
        held = _load_key(path)
        if held.node_id != identity.node_id:
            raise BadAnswer(
                f"{path} already holds another key (peer id {held.node_id.peer_id}): "
                "move it away first, or choose another data directory"
            )
        return KeyPlan(held, "existing", path, DEFAULT_KEY_FILE)
    return KeyPlan(identity, "import", path, DEFAULT_KEY_FILE)


def plan_existing(key: Path, data_dir: Path) -> KeyPlan:
    """Use the key file where it is; spec.identity.keyFile then names it by absolute path."""
    path = Path(os.path.abspath(key.expanduser()))
    identity = _load_key(path)
    default = Path(os.path.abspath(_default_key_path(data_dir)))
    return KeyPlan(identity, "existing", path, DEFAULT_KEY_FILE if path == default else str(path))


# --- names and paths ----------------------------------------------------------------------------


@cache
def _name_rule() -> tuple[re.Pattern[str], str]:
    rule = load_schema("Node")["$defs"]["name"]
    return re.compile(rule["pattern"]), str(rule["description"])


def check_name(text: str) -> str:
    """``text`` if it is a valid node, peer or provider name (the schema's pattern)."""
    pattern, description = _name_rule()
    if not pattern.fullmatch(text):
        rule = description.removeprefix("A DNS-label-like name: ")
        raise BadAnswer(f"{text!r} is not a valid name: {rule}")
    return text


def default_name() -> str:
    """This machine's host name made into a valid node name, or ``my-node``."""
    host = socket.gethostname().split(".")[0].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", host).strip("-")[:63].strip("-")
    try:
        return check_name(name)
    except BadAnswer:
        return "my-node"


def spec_data_dir(text: str) -> str:
    """How a data directory answer is written: ``~/...`` kept, anything else made absolute,
    since the spec reads a relative dataDir from the file's directory, not the shell's."""
    text = text.strip()
    if not text:
        raise BadAnswer("the data directory must not be empty")
    return text if text.startswith("~") else os.path.abspath(text)


def check_dir(path: Path, *, what: str) -> None:
    """That ``path`` is a directory this user can write in, or could create."""
    ancestor = path
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        if ancestor == path:
            raise BadAnswer(f"{what} {path} is not a directory")
        raise BadAnswer(f"cannot create {what} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadAnswer(f"cannot write {what} {path}: {ancestor} is not writable by this user")


# --- the draft ----------------------------------------------------------------------------------


def _say(issue: SpecIssue) -> str:
    return f"{issue.message} ({issue.hint})" if issue.hint else issue.message


@dataclass(frozen=True, slots=True)
class Draft:
    """The answers so far; ``checked`` is the only way a changed draft is accepted."""

    name: str
    data_dir: str  # as written in the spec: "~/..." or absolute
    key: KeyPlan | None = None
    listen_api: str = DEFAULT_API
    api_key_envs: tuple[str, ...] = ()
    discovery: bool = True
    targets: tuple[Provider, ...] = DEFAULT_TARGETS
    static: tuple[Provider, ...] = ()
    peers: tuple[Peer, ...] = ()
    trust: str = "friends"
    trusted: tuple[str, ...] = ()  # names of peers that may use this node (trust.allow)
    relays: tuple[str, ...] = ()
    acme_email: str | None = None
    acme_directory: str | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    def checked(self, **changes: Any) -> Draft:
        """This draft with ``changes``, if the spec loader accepts the result (peer ids and
        addresses come back in their canonical forms); else BadAnswer naming each problem."""
        draft = replace(self, **changes)
        try:
            loaded = load_spec(canonical_yaml(draft.document()), env={}, kind=NODE)
        except SpecError as e:
            raise BadAnswer("; ".join(_say(issue) for issue in e.issues)) from None
        spec = loaded.document["spec"]
        return replace(
            draft,
            peers=tuple(Peer(p["name"], p["id"], tuple(p.get("addrs", ()))) for p in spec["peers"]),
            relays=tuple(spec["endpoints"]["public"]["relays"]),
        )

    def trusts(self, name: str) -> bool:
        """Whether the peer may use this node: a rule in friends mode, anyone in public."""
        return self.trust == "public" or (self.trust == "friends" and name in self.trusted)

    def document(self) -> dict[str, Any]:
        listen: dict[str, Any] = {
            "p2p": list(DEFAULT_P2P),
            "api": self.listen_api,
            "control": DEFAULT_CONTROL,
        }
        if self.api_key_envs:
            listen["apiKeys"] = list(self.api_key_envs)
        discovery: dict[str, Any] = {"enabled": self.discovery, "interval": DISCOVERY_INTERVAL}
        if self.targets != DEFAULT_TARGETS:
            discovery["targets"] = [
                {"name": t.name, "kind": t.kind, "url": t.location} for t in self.targets
            ]
        public: dict[str, Any] = {"enabled": bool(self.relays), "relays": list(self.relays)}
        acme = {"email": self.acme_email, "directory": self.acme_directory}
        if any(acme.values()):
            public["acme"] = {k: v for k, v in acme.items() if v}
        return {
            "apiVersion": API_VERSION,
            "kind": "Node",
            "metadata": {"name": self.name},
            "spec": {
                "identity": {"keyFile": self.key.key_file if self.key else DEFAULT_KEY_FILE},
                "dataDir": self.data_dir,
                "listen": listen,
                "providers": {
                    "discovery": discovery,
                    "static": [p.to_dict() for p in self.static],
                },
                "peers": [p.to_dict() for p in self.peers],
                "trust": {"mode": self.trust}
                | ({"allow": [{"peer": n} for n in self.trusted]} if self.trusted else {}),
                "endpoints": {"public": public},
            },
        }


def initial_draft() -> Draft:
    return Draft(name=default_name(), data_dir=DEFAULT_DATA_DIR)


# --- probing for engines ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Probe:
    """What answered at one discovery target: its models, or why nothing did."""

    target: Provider
    models: tuple[str, ...] | None  # None: no engine there
    detail: str  # the engine (e.g. "Ollama 0.6.8"), or why it did not answer

    @property
    def found(self) -> bool:
        return self.models is not None

    def line(self) -> str:
        where = f"{self.target.name} at {self.target.location}"
        if self.models is None:
            return f"{where}: nothing there ({self.detail})"
        count = len(self.models)
        shown = ", ".join(self.models[:_SHOWN_MODELS]) + (", ..." if count > _SHOWN_MODELS else "")
        models = f"{count} model{'' if count == 1 else 's'}" + (f" ({shown})" if count else "")
        return f"{where}: found {self.detail} with {models}"


async def _probe_one(target: Provider) -> Probe:
    # Through the backend a provider of this target would have, and the prober discovery
    # uses: an engine the wizard finds is one the node will find. Imported here: the
    # providers bring trio and the HTTP client, which `gate` must not load to parse a command.
    from gate_runner.providers.probe import ENGINES, probe_engine

    spec = ProviderSpec(
        name=target.name,
        kind=target.kind,
        url=target.location,
        timeout=PROVIDER_TIMEOUTS[target.kind],
    )
    result = await probe_engine(spec)
    if not result.found:
        return Probe(target, None, result.why_absent())
    engine = ENGINES[target.kind]
    version = result.health.version
    detail = f"{engine} {version}" if version else engine
    if result.models is None:  # it answers, but its listing failed: say so
        return Probe(target, (), f"{detail} ({result.health.error})")
    return Probe(target, tuple(m.id for m in result.models), detail)


async def probe_all(
    targets: Iterable[Provider], *, on_result: Callable[[Probe], None] | None = None
) -> list[Probe]:
    """Probe every target at once; ``on_result`` sees each as it finishes. In target order."""
    targets = list(targets)
    results: dict[int, Probe] = {}

    async def one(index: int, target: Provider) -> None:
        results[index] = probe = await _probe_one(target)
        if on_result is not None:
            on_result(probe)

    async with anyio.create_task_group() as tg:
        for index, target in enumerate(targets):
            tg.start_soon(one, index, target)
    return [results[i] for i in range(len(targets))]


def pin_found(draft: Draft, probes: Sequence[Probe]) -> Draft:
    """``draft`` with every engine found added as a static provider (unless one is already
    there at that URL); a name a static provider has gets a "-discovered" suffix, as the
    discovery component does."""
    static = list(draft.static)
    for probe in probes:
        target = probe.target
        urls = {p.location.rstrip("/") for p in static}
        if not probe.found or target.location.rstrip("/") in urls:
            continue
        taken = {p.name for p in static}
        name = target.name if target.name not in taken else f"{target.name}-discovered"
        static.append(Provider(name, target.kind, target.location))
    return draft.checked(static=tuple(static))


# --- the YAML -----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as gate.yaml.example writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _block(key: str, value: Any, *, indent: int = 0) -> str:
    text = yaml.dump(
        {key: value},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    return textwrap.indent(text, " " * indent)


def _comment(text: str, *, indent: int = 2) -> str:
    """``text`` as comment lines: paragraphs (split at blank lines) filled to 96 columns."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    width = 96 - indent - 2
    lines: list[str] = []
    for i, paragraph in enumerate(paragraphs):
        if i:
            lines.append("")
        # A `command` stays on one line: its spaces are hidden from the wrapper.
        text = re.sub(r"`[^`]*`", lambda m: m[0].replace(" ", "\0"), " ".join(paragraph.split()))
        wrapped = textwrap.wrap(text, width=width, break_on_hyphens=False)
        lines.extend(line.replace("\0", " ") for line in wrapped)
    pad = " " * indent
    return "".join(f"{pad}# {line}\n" if line else f"{pad}#\n" for line in lines)


def render(draft: Draft, *, spec_file: str) -> str:
    """The commented gate.yaml for ``draft``; raises SpecError if it would not load (a bug)."""
    doc = draft.document()
    spec = doc["spec"]
    peer_id = draft.key.peer_id if draft.key else "made by `gate up` on first start"
    api = spec["listen"]["api"]
    parts = [
        _comment(
            f"""
            Gate node spec, written by `gate init`.

            Start the node with `gate up -f {spec_file}`. It reloads this file when it changes;
            a bad edit is rejected and the running spec stays (see `gate status`). Check an
            edit first with `gate validate -f {spec_file}`. Every setting, with its default, is
            described in gate.yaml.example and in the JSON Schema schema/node.v1.json.
            """,
            indent=0,
        ),
        "\n",
        _block("apiVersion", doc["apiVersion"]),
        _block("kind", doc["kind"]),
        _comment("This node's name as peers see it.", indent=0),
        _block("metadata", doc["metadata"]),
        "\nspec:\n",
        _comment(
            f"""
            The node's Ed25519 key, peer id {peer_id}.
            Relative to dataDir unless absolute. Back it up: a new key is a new node to peers.
            """
        ),
        _block("identity", spec["identity"], indent=2),
        "\n",
        _comment(
            "Where the key, control.token, state.db (spec history, request log) and certs/ live."
        ),
        _block("dataDir", spec["dataDir"], indent=2),
        "\n",
        _comment(
            f"""
            p2p: connections from peers and relays. api: the OpenAI-compatible API; point clients
            at http://{api}/v1. control: `gate status`, `gate ui` and /metrics (with the token
            in dataDir/control.token).
            """
        ),
        _block("listen", spec["listen"], indent=2),
        "\n",
        _comment(
            """
            Local engines. Discovery probes its targets every interval and uses what answers;
            static providers are always used. Kinds: ollama (the native API), openai (any
            OpenAI-compatible server, url ending in /v1), llamacpp (a GGUF file given as model,
            with the llamacpp extra).
            """
        ),
        _block("providers", spec["providers"], indent=2),
        "\n",
        _comment(
            """
            Friends' nodes, by a local name. A friend's id is what `gate id show` prints on their
            node. addrs are optional: a peer without them can still dial in. Add one later with
            `gate peers add NAME ID --addr MULTIADDR`.
            """
        ),
        _block("peers", spec["peers"], indent=2),
        "\n",
        _comment(
            """
            Who may use this node's engines. private: nobody. friends: the peers named in
            allow; the other peers above can be used, but may not use this node. public: any
            peer that connects. A rule may narrow models (globs) and set rateLimit.
            """
        ),
        _block("trust", spec["trust"], indent=2),
        "\n",
        _comment(
            """
            A public HTTPS name, https://<this node's label>.<relay domain>, through relays that
            forward TLS they cannot read. It needs relay multiaddrs ending in /p2p/<relay id>.
            """
        ),
        _block("endpoints", spec["endpoints"], indent=2),
    ]
    text = "".join(parts)
    load_spec(text, source=spec_file, env={}, kind=NODE)
    return text
