"""Identity: the Ed25519 key, its PEM file on disk (modes, atomic writes, errors) and signatures."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gate_runner.errors import IdentityError
from gate_runner.identity import Identity, NodeId, verify

# RFC 8032, section 7.1, TEST 1 (empty message).
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def error_texts(error: BaseException) -> Iterator[str]:
    """str and repr of an error and of everything chained to it."""
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        if isinstance(seen, IdentityError) and seen.hint:
            yield seen.hint
        seen = seen.__cause__ or seen.__context__


def secrets_of(pem: bytes, seed: bytes | None = None) -> list[str]:
    """The strings that would betray a key: its PEM body lines and its seed in hex."""
    lines = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
    return lines + ([seed.hex(), seed.hex().upper()] if seed is not None else [])


def assert_no_key_material(texts: Iterator[str] | list[str], secrets: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


def rsa_pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def encrypted_ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def openssh_ed25519() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


def public_key_pem() -> bytes:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


# name -> (file contents, what the message says)
CORRUPT: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "not a PEM private key"),
    "random-bytes": (lambda: os.urandom(200), "not a PEM private key"),
    "truncated-pem": (lambda: Identity.generate().to_pem()[:80], "not a PEM private key"),
    "rsa-pkcs8": (rsa_pem, "the key is RSA, not Ed25519"),
    "ec-pkcs8": (ec_pem, "the key is EC, not Ed25519"),
    "encrypted": (encrypted_ed25519_pem, "the key is encrypted"),
    "openssh-format": (openssh_ed25519, "not a PEM private key"),
    "public-key": (public_key_pem, "not a PEM private key"),
    "huge": (lambda: Identity.generate().to_pem() * 1000, "too large"),
}


def test_generate_save_load_round_trip(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "identity.pem"
    identity.save(path)
    loaded = Identity.load(path)
    assert loaded.node_id == identity.node_id
    assert loaded.seed == identity.seed
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert os.listdir(tmp_path) == ["identity.pem"]  # no temp file left behind


def test_generated_keys_differ() -> None:
    assert Identity.generate().node_id != Identity.generate().node_id


def test_seed_and_pem_round_trip() -> None:
    identity = Identity.from_seed(bytes(range(32)))
    assert identity.seed == bytes(range(32))
    assert Identity.from_seed(identity.seed).node_id == identity.node_id
    assert Identity.from_pem(identity.to_pem()).seed == identity.seed


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_from_seed_needs_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(seed)


def test_rfc8032_vector() -> None:
    identity = Identity.from_seed(RFC_SEED)
    assert identity.node_id.public_key == RFC_PUBLIC
    assert identity.sign(b"") == RFC_SIGNATURE
    assert verify(identity.node_id, b"", RFC_SIGNATURE)


def test_reads_a_key_written_by_openssl(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is not installed (scripts/system-deps.sh installs it)")
    path = tmp_path / "identity.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True)
    path.chmod(0o600)
    text = subprocess.run(
        [openssl, "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    # The DER SubjectPublicKeyInfo of an Ed25519 key ends with the 32 raw public key bytes.
    assert Identity.load(path).node_id.public_key == text[-32:]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277])
def test_save_writes_mode_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "identity.pem"
    old = os.umask(umask)
    try:
        Identity.generate().save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o610])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "identity.pem"
    Identity.generate().save(path)
    path.chmod(mode)
    with pytest.raises(IdentityError) as caught:
        Identity.load(path)
    assert f"{mode:04o}" in caught.value.message
    assert str(path) in caught.value.message
    assert f"chmod 600 {path}" in str(caught.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    identity = Identity.generate()
    path = tmp_path / "identity.pem"
    identity.save(path)
    path.chmod(mode)
    assert Identity.load(path).node_id == identity.node_id


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "identity.pem"
    with pytest.raises(IdentityError) as caught:
        Identity.load(path)
    assert caught.value.message == f"key file {path} does not exist"
    assert caught.value.hint == "run `gate id import` or let `gate up` generate one"


def test_load_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "identity.pem"
    path.mkdir(mode=0o700)
    with pytest.raises(IdentityError, match="not a regular file"):
        Identity.load(path)


@pytest.mark.parametrize("name", CORRUPT)
def test_load_corrupt_file(tmp_path: Path, name: str) -> None:
    make, says = CORRUPT[name]
    data = make()
    path = write_private(tmp_path / "identity.pem", data)
    with pytest.raises(IdentityError) as caught:
        Identity.load(path)
    assert caught.value.message.startswith(f"key file {path} is corrupt: ")
    assert says in caught.value.message
    assert caught.value.hint
    if data.startswith(b"-----"):
        assert_no_key_material(error_texts(caught.value), secrets_of(data))


@pytest.mark.parametrize("name", [n for n in CORRUPT if n != "huge"])
def test_from_pem_rejects(name: str) -> None:
    make, says = CORRUPT[name]
    with pytest.raises(IdentityError, match=says):
        Identity.from_pem(make())


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "identity.pem"
    first, second = Identity.generate(), Identity.generate()
    first.save(path)
    with pytest.raises(IdentityError) as caught:
        second.save(path)
    assert "already exists" in caught.value.message
    assert caught.value.hint
    assert Identity.load(path).node_id == first.node_id
    assert os.listdir(tmp_path) == ["identity.pem"]

    second.save(path, overwrite=True)
    assert Identity.load(path).node_id == second.node_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["identity.pem"]


def test_save_under_a_regular_file(tmp_path: Path) -> None:
    # A path below a regular file fails for root too, unlike a chmod'ed directory.
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    with pytest.raises(IdentityError) as caught:
        Identity.generate().save(blocker / "identity.pem")
    assert str(blocker) in caught.value.message
    assert "Not a directory" in caught.value.message


_READ_ONLY_SAVE = """
import sys
from pathlib import Path
from gate_runner.errors import IdentityError
from gate_runner.identity import Identity
directory = Path(sys.argv[1])
try:
    Identity.generate().save(directory / "identity.pem")
except IdentityError as e:
    print(e.message)
    sys.exit(0)
sys.exit("saved into a read-only directory")
"""


def test_save_into_a_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    # Root writes into a 0500 directory through CAP_DAC_OVERRIDE; as root the save runs in
    # a child without that capability (util-linux setpriv), so the refusal is real.
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's override"
        prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-c", _READ_ONLY_SAVE, str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        directory.chmod(0o700)
    assert result.returncode == 0, result.stderr
    assert str(directory) in result.stdout
    assert "Permission denied" in result.stdout


def test_load_or_create(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "identity.pem"
    created, was_created = Identity.load_or_create(path)
    assert was_created
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded, was_created = Identity.load_or_create(path)
    assert not was_created
    assert loaded.node_id == created.node_id


def test_load_or_create_racing_writers_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "identity.pem"
    start = threading.Barrier(8)
    results: list[tuple[Identity, bool]] = []

    def create() -> None:
        start.wait()
        results.append(Identity.load_or_create(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 8
    assert [created for _, created in results].count(True) == 1
    assert {identity.node_id for identity, _ in results} == {Identity.load(path).node_id}
    assert os.listdir(tmp_path) == ["identity.pem"]


def test_load_or_create_does_not_replace_a_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "identity.pem"
    Identity.generate().save(path)
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        Identity.load_or_create(path)
    write_private(path, b"garbage")
    with pytest.raises(IdentityError, match="corrupt"):
        Identity.load_or_create(path)
    assert path.read_bytes() == b"garbage"


def test_load_or_create_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    with pytest.raises(IdentityError, match="cannot create directory"):
        Identity.load_or_create(blocker / "identity.pem")


def test_sign_and_verify() -> None:
    identity, other = Identity.generate(), Identity.generate()
    data = b"hello, gate"
    signature = identity.sign(data)
    assert len(signature) == 64
    assert verify(identity.node_id, data, signature)
    assert not verify(identity.node_id, b"hello, gatf", signature)
    assert not verify(other.node_id, data, signature)
    assert not verify(identity.node_id, data, other.sign(data))
    assert not verify(identity.node_id, data, signature[:-1])
    assert not verify(identity.node_id, data, b"")
    assert not verify(identity.node_id, data, bytes(64))
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(identity.node_id, data, flipped)


def test_verify_with_a_key_that_is_not_a_curve_point() -> None:
    # Not every 32-byte string decodes to a point; verify must still just say False.
    assert not verify(NodeId(b"\xff" * 32), b"data", bytes(64))


def test_repr_and_str_hide_the_key(tmp_path: Path) -> None:
    identity = Identity.generate()
    assert repr(identity) == f"Identity({identity.node_id.peer_id})"
    assert str(identity) == repr(identity)
    secrets = secrets_of(identity.to_pem(), identity.seed)
    assert_no_key_material([repr(identity), str(identity), repr(identity.node_id)], secrets)


def test_error_messages_hide_the_key(tmp_path: Path) -> None:
    identity = Identity.generate()
    path = tmp_path / "identity.pem"
    identity.save(path)
    secrets = secrets_of(identity.to_pem(), identity.seed)

    errors: list[IdentityError] = []
    path.chmod(0o644)
    with pytest.raises(IdentityError) as too_open:
        Identity.load(path)
    errors.append(too_open.value)
    path.chmod(0o600)
    with pytest.raises(IdentityError) as exists:
        identity.save(path)
    errors.append(exists.value)
    truncated = identity.to_pem()[:-40]
    write_private(path, truncated)
    with pytest.raises(IdentityError) as corrupt:
        Identity.load(path)
    errors.append(corrupt.value)

    for error in errors:
        assert_no_key_material(error_texts(error), secrets)
