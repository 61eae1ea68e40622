"""`gate init`: the wizard under a real pseudo-terminal, the same answers from flags, and bad
input refused with exit 2, a message naming what to fix, and nothing written."""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

import pexpect
import pytest

from gate_runner.cli.draft import default_name
from gate_runner.cli.main import main
from gate_runner.identity import Identity
from gate_runner.spec import NODE, NodeSpec, load_spec_file
from tests.cli.conftest import MODELS, Gate, node_id
from tests.fakes.ollama import VERSION as OLLAMA_VERSION
from tests.rig import ServerProcess

RELAY = f"/dns4/relay.example.net/tcp/41146/p2p/{node_id('relay').peer_id}"


def load(path: Path) -> NodeSpec:
    loaded = load_spec_file(path, env={}, kind=NODE)
    return loaded.spec


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_key(path: Path, identity: Identity | None = None, *, chmod: int = 0o600) -> Identity:
    identity = identity or Identity.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(identity.to_pem())
    path.chmod(chmod)
    return identity


# --- the wizard under a pseudo-terminal ---------------------------------------------------------


def spawn(tmp_path: Path, env: dict[str, str], *args: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "gate_runner", "init", *args],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    return child


def answer(child: pexpect.spawn, prompt: str, reply: str) -> None:
    child.expect_exact(prompt)
    child.sendline(reply)


def finish(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    return str(child.before)


def test_wizard_asks_every_step_and_writes_a_valid_spec(
    tmp_path: Path, env: dict[str, str], ollama: ServerProcess, dead_url: str
) -> None:
    bob = node_id("bob")
    spec_file = tmp_path / "gate.yaml"
    child = spawn(
        tmp_path,
        env,
        "-f",
        str(spec_file),
        "--data-dir",
        str(tmp_path / "data"),
        "--discovery-target",
        f"ollama=ollama,{ollama.url}",
        "--discovery-target",
        f"lmstudio=openai,{dead_url}",
    )
    child.expect_exact("[1/6] Node")
    answer(child, "Node name, as peers see it [", "Alice_Laptop")
    child.expect_exact("'Alice_Laptop' is not a valid name: lowercase letters")
    answer(child, "Node name, as peers see it [", "alice-laptop")
    answer(child, f"Data directory [{tmp_path / 'data'}]: ", "")

    child.expect_exact("[2/6] Identity")
    child.expect_exact("1) generate a new key")
    answer(child, "Identity [1]: ", "4")
    child.expect_exact("answer 1, 2 or 3")
    answer(child, "Identity [1]: ", "1")
    child.expect(r"peer id (12D3KooW\w+)")
    peer_id = child.match.group(1)

    child.expect_exact("[3/6] Engines")
    child.expect_exact("Keep discovery on")
    probed = str(child.before)  # the probes finish in any order
    found = (
        f"ollama at {ollama.url}: found Ollama {OLLAMA_VERSION} with 2 models ({', '.join(MODELS)})"
    )
    assert found in probed
    assert f"lmstudio at {dead_url}: nothing there (connection refused)" in probed
    child.sendline("")
    answer(child, "Pin ollama as static provider(s)", "y")
    child.expect_exact(f"static provider ollama: ollama at {ollama.url}")
    answer(child, "Another engine (empty when done): ", "lmstudio=openai,ftp://nowhere")
    child.expect_exact("is not in the expected form")
    answer(child, "Another engine (empty when done): ", "")

    child.expect_exact("[4/6] Trust and peers")
    answer(child, "Trust mode [friends]: ", "p")
    child.expect_exact("'p': answer private, friends or public")
    answer(child, "Trust mode [friends]: ", "pub")
    answer(child, "Peer name (empty when done): ", "bob")
    answer(child, "bob's id: ", "12D3KooWnot-an-id")
    child.expect_exact("not a peer id (expected 12D3KooW..., 64 hex chars or a 52-char label)")
    answer(child, "bob's id: ", bob.hex)
    answer(child, "bob's multiaddrs, comma-separated", "/ip4/203.0.113.7/tcp/41145")
    child.expect_exact(f"added bob ({bob.peer_id})")
    answer(child, "Peer name (empty when done): ", "")

    child.expect_exact("[5/6] Public endpoint (optional)")
    answer(child, "Publish this node through a relay? [y/N]: ", "")

    child.expect_exact("[6/6] Review")
    child.expect_exact("apiVersion: gate.hellas.ai/v1")
    child.expect_exact("name: alice-laptop")
    answer(child, "? [y/N]: ", "y")
    out = finish(child)

    assert child.exitstatus == 0, out
    assert f"gate up -f {spec_file}" in out
    spec = load(spec_file)
    assert spec.name == "alice-laptop"
    assert spec.data_dir == tmp_path / "data"
    assert spec.trust.mode == "public"
    assert [(p.name, p.id, p.addrs) for p in spec.peers] == [
        ("bob", bob.peer_id, ("/ip4/203.0.113.7/tcp/41145",))
    ]
    assert spec.providers.discovery.enabled is True
    assert [t.url for t in spec.providers.discovery.targets] == [ollama.url, dead_url]
    assert [(p.name, p.kind, p.url) for p in spec.providers.static] == [
        ("ollama", "ollama", ollama.url)
    ]
    assert spec.endpoints.public.enabled is False
    key = tmp_path / "data" / "identity.pem"
    assert mode(key) == 0o600
    assert Identity.load(key).node_id.peer_id == peer_id
    assert spec_file.read_text().startswith("# Gate node spec, written by `gate init`.")


def test_wizard_reasks_for_a_bad_pem_and_imports_a_good_one(
    tmp_path: Path, env: dict[str, str], dead_url: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    good = Identity.generate()
    pem = tmp_path / "exported.pem"
    pem.write_bytes(good.to_pem())
    child = spawn(
        tmp_path,
        env,
        "--data-dir",
        "data",
        "--discovery-target",
        f"lmstudio=openai,{dead_url}",
        "--public-relay",
        RELAY,
    )
    answer(child, "Node name, as peers see it [", "carol")
    answer(child, "Data directory [", "")
    answer(child, "Identity [1]: ", "2")
    answer(child, "PEM file to import (empty: back): ", str(garbage))
    child.expect_exact(f"{garbage}: not a PEM private key")
    answer(child, "Identity [2]: ", "2")
    answer(child, "PEM file to import (empty: back): ", str(tmp_path / "missing.pem"))
    child.expect_exact("No such file or directory")
    answer(child, "Identity [2]: ", "2")
    answer(child, "PEM file to import (empty: back): ", str(pem))
    child.expect_exact(f"peer id {good.node_id.peer_id}")
    answer(child, "Keep discovery on", "n")
    answer(child, "Another engine (empty when done): ", "")
    answer(child, "Trust mode [friends]: ", "private")
    answer(child, "Peer name (empty when done): ", "")
    # --public-relay makes publishing the default, with that relay already listed.
    answer(child, "Publish this node through a relay? [Y/n]: ", "")
    answer(child, "Another relay (empty when done): ", "/dns4/relay2.example.net/tcp/41146")
    child.expect_exact("a relay address must end in /p2p/<relay peer id>")
    answer(child, "Another relay (empty when done): ", "")
    answer(child, "ACME contact email for certificate notices (optional): ", "not-an-email")
    child.expect_exact("'not-an-email'")
    answer(child, "ACME contact email for certificate notices (optional): ", "me@example.com")
    answer(child, "Write gate.yaml and the key", "yes")
    out = finish(child)

    assert child.exitstatus == 0, out
    spec = load(tmp_path / "gate.yaml")
    assert spec.data_dir == tmp_path / "data"  # the relative answer was made absolute
    assert spec.trust.mode == "private"
    assert spec.providers.discovery.enabled is False
    assert spec.endpoints.public.enabled is True
    assert spec.endpoints.public.relays == (RELAY,)
    assert spec.endpoints.public.acme.email == "me@example.com"
    key = tmp_path / "data" / "identity.pem"
    assert mode(key) == 0o600
    assert Identity.load(key).node_id == good.node_id


def test_wizard_declined_at_the_review_writes_nothing(
    tmp_path: Path, env: dict[str, str], dead_url: str
) -> None:
    child = spawn(
        tmp_path, env, "--data-dir", "data", "--discovery-target", f"lm=openai,{dead_url}"
    )
    for prompt in (
        "Node name",
        "Data directory",
        "Identity [1]: ",
        "Keep discovery on",
        "Another engine",
        "Trust mode",
        "Peer name",
        "Publish this node",
    ):
        answer(child, prompt, "")
    answer(child, "Write gate.yaml and the key", "")  # the default is no
    out = finish(child)
    assert child.exitstatus == 1, out
    assert "nothing written" in out
    assert not (tmp_path / "gate.yaml").exists()
    assert not (tmp_path / "data" / "identity.pem").exists()


def test_wizard_asks_whether_each_friend_may_use_this_node(
    tmp_path: Path, env: dict[str, str], dead_url: str
) -> None:
    """Adding a friend's node to use its engines does not open this node to it: in friends
    mode the wizard asks, and writes a trust.allow rule only for a yes."""
    bob, carol = node_id("bob"), node_id("carol")
    child = spawn(
        tmp_path, env, "--data-dir", "data", "--discovery-target", f"lm=openai,{dead_url}"
    )
    for prompt in ("Node name", "Data directory", "Identity [1]: ", "Keep discovery on"):
        answer(child, prompt, "")
    answer(child, "Another engine", "")
    answer(child, "Trust mode [friends]: ", "")
    for name, peer, shares in (("bob", bob, "y"), ("carol", carol, "")):
        answer(child, "Peer name (empty when done): ", name)
        answer(child, f"{name}'s id: ", peer.peer_id)
        answer(child, f"{name}'s multiaddrs", "")
        answer(child, f"May {name} use this node's engines? [y/N]: ", shares)
    child.expect_exact("added carol")
    child.expect_exact("carol may not use this node")
    answer(child, "Peer name (empty when done): ", "")
    answer(child, "Publish this node", "")
    answer(child, "Write gate.yaml and the key", "y")
    out = finish(child)
    assert child.exitstatus == 0, out
    spec = load(tmp_path / "gate.yaml")
    assert [p.name for p in spec.peers] == ["bob", "carol"]
    assert [rule.peer for rule in spec.trust.allow] == ["bob"]


@pytest.mark.parametrize(
    ("stop", "code", "said"), [("ctrl-c", 130, "interrupted"), ("eof", 1, "input ended")]
)
def test_wizard_interrupted_writes_nothing(
    tmp_path: Path, env: dict[str, str], stop: str, code: int, said: str
) -> None:
    child = spawn(tmp_path, env, "--data-dir", "data", "--no-discovery")
    answer(child, "Node name", "dave")
    answer(child, "Data directory", "")
    child.expect_exact("Identity [1]: ")
    if stop == "ctrl-c":
        child.sendcontrol("c")
    else:
        child.sendeof()
    out = finish(child)
    assert child.exitstatus == code, out
    assert f"{said}: nothing written" in out
    assert not (tmp_path / "gate.yaml").exists()
    assert not (tmp_path / "data").exists()


# --- the same answers from flags ----------------------------------------------------------------


def test_non_interactive_writes_what_the_flags_say(gate: Gate, tmp_path: Path) -> None:
    carol = node_id("carol")
    result = gate(
        "init",
        "--non-interactive",
        "-f",
        "conf/node.yaml",
        "--name",
        "bob-node",
        "--data-dir",
        "state",
        "--listen-api",
        "0.0.0.0:31145",
        "--api-key-env",
        "GATE_API_KEY",
        "--no-discovery",
        "--provider",
        "lm=openai,http://127.0.0.1:1234/v1",
        "--provider",
        "gguf=llamacpp,/models/qwen.gguf",
        "--trust",
        "friends",
        "--peer",
        f"carol={carol.label}@/ip4/203.0.113.9/tcp/41145,/dns4/carol.example/tcp/41145",
        "--trusted-peer",
        f"dan={node_id('dan').hex}",
        "--public-relay",
        RELAY,
        "--acme-email",
        "ops@example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "Looking for engines" not in result.stdout  # discovery off: nothing probed
    spec_file = tmp_path / "conf" / "node.yaml"
    spec = load(spec_file)
    assert spec.name == "bob-node"
    assert spec.data_dir == tmp_path / "state"
    assert str(spec.listen.api) == "0.0.0.0:31145"
    assert spec.listen.api_keys == ("GATE_API_KEY",)
    assert spec.providers.discovery.enabled is False
    assert [(p.name, p.kind, p.url, p.model) for p in spec.providers.static] == [
        ("lm", "openai", "http://127.0.0.1:1234/v1", None),
        ("gguf", "llamacpp", None, "/models/qwen.gguf"),
    ]
    assert spec.trust.mode == "friends"
    assert [(p.name, p.id, p.addrs) for p in spec.peers] == [
        ("carol", carol.peer_id, ("/ip4/203.0.113.9/tcp/41145", "/dns4/carol.example/tcp/41145")),
        ("dan", node_id("dan").peer_id, ()),
    ]
    assert [rule.peer for rule in spec.trust.allow] == ["dan"]  # only --trusted-peer's
    assert "peers carol, dan (may use this node)" in result.stdout
    assert spec.endpoints.public.enabled is True
    assert spec.endpoints.public.relays == (RELAY,)
    assert spec.endpoints.public.acme.email == "ops@example.com"
    key = Identity.load(tmp_path / "state" / "identity.pem")
    assert mode(tmp_path / "state" / "identity.pem") == 0o600
    assert f"peer id {key.node_id.peer_id}" in result.stdout
    assert "gate up -f conf/node.yaml" in result.stdout
    assert "gate up -f conf/node.yaml" in spec_file.read_text()  # the header says how to start


def test_non_interactive_probes_and_pins_a_discovered_engine(
    gate: Gate, tmp_path: Path, ollama: ServerProcess, dead_url: str
) -> None:
    result = gate(
        "init",
        "--non-interactive",
        "--data-dir",
        "data",
        "--discovery-target",
        f"ollama=ollama,{ollama.url}",
        "--discovery-target",
        f"lmstudio=openai,{dead_url}",
        "--provider",
        "ollama=ollama,http://127.0.0.1:9/",  # takes the name: the pinned one gets a suffix
        "--pin-discovered",
    )
    assert result.returncode == 0, result.stderr
    assert f"ollama at {ollama.url}: found Ollama {OLLAMA_VERSION} with 2 models" in result.stdout
    assert f"lmstudio at {dead_url}: nothing there" in result.stdout
    assert "\x1b[K" not in result.stdout  # no spinner when stdout is not a terminal
    spec = load(tmp_path / "gate.yaml")
    assert spec.providers.discovery.enabled is True
    assert [(p.name, p.url) for p in spec.providers.static] == [
        ("ollama", "http://127.0.0.1:9/"),
        ("ollama-discovered", ollama.url),
    ]


def test_without_a_terminal_it_uses_the_defaults_and_says_so(
    gate: Gate, tmp_path: Path, env: dict[str, str]
) -> None:
    result = gate("init", "--no-discovery")
    assert result.returncode == 0, result.stderr
    assert "stdin is not a terminal, so nothing is asked" in result.stderr
    text = (tmp_path / "gate.yaml").read_text()
    assert "dataDir: ~/.local/share/gate\n" in text  # the ~ is kept for the reader
    spec = load(tmp_path / "gate.yaml")
    assert spec.name == default_name()
    assert spec.trust.mode == "friends"
    assert spec.peers == ()
    home_key = Path(env["HOME"]) / ".local/share/gate/identity.pem"
    assert mode(home_key) == 0o600


def test_a_second_run_keeps_the_key(gate: Gate, tmp_path: Path) -> None:
    first = gate("init", "--non-interactive", "--data-dir", "data", "--no-discovery")
    assert first.returncode == 0, first.stderr
    before = Identity.load(tmp_path / "data" / "identity.pem").node_id
    (tmp_path / "gate.yaml").unlink()
    second = gate("init", "--non-interactive", "--data-dir", "data", "--no-discovery")
    assert second.returncode == 0, second.stderr
    assert "a new key" not in second.stdout
    assert Identity.load(tmp_path / "data" / "identity.pem").node_id == before
    assert f"peer id {before.peer_id}" in second.stdout


def test_key_file_is_used_where_it_is(gate: Gate, tmp_path: Path) -> None:
    key = write_key(tmp_path / "keys" / "node.pem")
    result = gate(
        "init", "--non-interactive", "--data-dir", "data", "--no-discovery",
        "--key-file", "keys/node.pem",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    spec = load(tmp_path / "gate.yaml")
    assert spec.key_path == tmp_path / "keys" / "node.pem"
    assert Identity.load(spec.key_path).node_id == key.node_id
    assert not (tmp_path / "data" / "identity.pem").exists()


def test_force_replaces_the_spec_and_keeps_the_old_one(gate: Gate, tmp_path: Path) -> None:
    old = "# my hand-written spec\n"
    (tmp_path / "gate.yaml").write_text(old)
    result = gate(
        "init", "--non-interactive", "--force", "--data-dir", "data", "--no-discovery",
        "--name", "fresh",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "gate.yaml").name == "fresh"
    assert (tmp_path / "gate.yaml.bak").read_text() == old


# --- bad input: exit 2, a message that names what to fix, nothing written -----------------------


def init(tmp_path: Path, *args: str) -> int:
    return main(
        ["init", "--non-interactive", "-f", str(tmp_path / "gate.yaml"),
         "--data-dir", str(tmp_path / "data"), "--no-discovery", *args]
    )  # fmt: skip


def assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "gate.yaml").exists()
    assert not (tmp_path / "data" / "identity.pem").exists()


def test_an_existing_spec_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "gate.yaml").write_text("mine\n")
    assert init(tmp_path) == 2
    err = capsys.readouterr().err
    assert "gate.yaml already exists (pass --force to replace it" in err
    assert (tmp_path / "gate.yaml").read_text() == "mine\n"
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--name", "Alice Laptop"),
            "--name: 'Alice Laptop' is not a valid name: lowercase letters, digits and '-'",
        ),
        (
            ("--peer", "bob=12D3KooWnope"),
            "--peer bob=12D3KooWnope: not a peer id (expected 12D3KooW..., 64 hex chars",
        ),
        (("--peer", "bob"), "--peer bob: 'bob' is not NAME=ID[@ADDR,...]"),
        (
            ("--peer", f"bob={node_id('b').hex}@not-a-multiaddr"),
            "not a multiaddr",
        ),
        (
            ("--peer", f"bob={node_id('b').hex}", "--peer", f"bob={node_id('c').hex}"),
            "duplicate peer name 'bob'",
        ),
        (("--provider", "lm=openai"), "--provider lm=openai: 'lm=openai' is not [NAME=]KIND,URL"),
        (("--provider", "lm=vllm,http://x"), "unknown kind 'vllm'"),
        (("--discovery-target", "x=llamacpp,/m.gguf"), "unknown kind 'llamacpp'"),
        (("--listen-api", "localhost"), "--listen-api: "),
        (
            ("--listen-api", "0.0.0.0:31145"),
            "the API on 0.0.0.0:31145 would answer anyone on the network without a key",
        ),
        (("--api-key-env", "MY-KEY"), "--api-key-env MY-KEY: "),
        (
            ("--public-relay", "/dns4/relay.example.net/tcp/41146"),
            "a relay address must end in /p2p/<relay peer id>",
        ),
        (("--acme-email", "me@example.com"), "--acme-email needs --public-relay"),
        (("--public-relay", RELAY, "--acme-email", "me"), "--acme-email: "),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert init(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("gate init: ")
    assert message in err
    assert_nothing_written(tmp_path)


def test_unreadable_pems_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pem"
    assert init(tmp_path, "--import-key", str(missing)) == 2
    assert (
        f"--import-key: cannot read {missing}: No such file or directory" in capsys.readouterr().err
    )

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello\n")
    assert init(tmp_path, "--import-key", str(garbage)) == 2
    err = capsys.readouterr().err
    assert f"--import-key: {garbage}: not a PEM private key" in err
    assert "openssl genpkey -algorithm ed25519" in err  # says how to make a good one
    assert_nothing_written(tmp_path)


def test_an_imported_key_never_replaces_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = write_key(tmp_path / "data" / "identity.pem")
    other = write_key(tmp_path / "other.pem")
    assert init(tmp_path, "--import-key", str(tmp_path / "other.pem")) == 2
    err = capsys.readouterr().err
    assert f"already holds another key (peer id {held.node_id.peer_id})" in err
    assert Identity.load(tmp_path / "data" / "identity.pem").node_id == held.node_id
    assert other.node_id != held.node_id
    assert not (tmp_path / "gate.yaml").exists()


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "open.pem"
    write_key(key, chmod=0o644)
    assert init(tmp_path, "--key-file", str(key)) == 2
    err = capsys.readouterr().err
    assert "--key-file: " in err
    assert f"chmod 600 {key}" in err
    assert_nothing_written(tmp_path)


def test_unwritable_places_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The tests may run as root, for whom every directory is writable; a regular file in the
    # way fails for everyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["init", "--non-interactive", "--no-discovery", "-f", str(blocker / "gate.yaml")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"-f: the spec file's directory {blocker} is not a directory" in err

    code = main(
        ["init", "--non-interactive", "--no-discovery", "-f", str(tmp_path / "gate.yaml"),
         "--data-dir", str(blocker / "data")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"--data-dir: cannot create the data directory {blocker / 'data'}" in err
    assert not (tmp_path / "gate.yaml").exists()


def test_written_spec_loads_with_gate_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert init(tmp_path, "--name", "valid-one", "--peer", f"bob={node_id('bob').peer_id}") == 0
    capsys.readouterr()
    assert main(["validate", "-f", str(tmp_path / "gate.yaml")]) == 0
    assert re.search(r"gate\.yaml: valid Node spec", capsys.readouterr().out)
