"""The node's Ed25519 private key: generating, signing, and the ``identity.pem`` file on disk.

No message, repr or log line built here contains key material.
"""

from __future__ import annotations

__all__ = ("Identity", "verify")

import os
import stat
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gate_runner.errors import IdentityError
from gate_runner.files import write_secret
from gate_runner.identity.ids import NodeId

_SEED_LEN: Final = 32
# An Ed25519 PKCS#8 PEM is 119 bytes; anything far bigger is not a key file and is not read whole.
_MAX_KEY_FILE: Final = 64 * 1024
_PEM_HINT: Final = (
    "expected an unencrypted PKCS#8 Ed25519 key (-----BEGIN PRIVATE KEY-----); "
    "`openssl genpkey -algorithm ed25519` writes one"
)


class Identity:
    """The node's Ed25519 key pair; the same 32-byte seed later builds the libp2p KeyPair."""

    __slots__ = ("_key", "_node_id")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._node_id = NodeId(key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != _SEED_LEN:
            raise ValueError(f"an Ed25519 seed is {_SEED_LEN} bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> Identity:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError as e:
            # cryptography raises TypeError when the key is encrypted and no password was given.
            raise IdentityError(
                "the key is encrypted",
                hint="decrypt it first, e.g. `openssl pkey -in key.pem -out plain.pem`",
            ) from e
        except (ValueError, UnsupportedAlgorithm) as e:
            raise IdentityError("not a PEM private key", hint=_PEM_HINT) from e
        if not isinstance(key, Ed25519PrivateKey):
            kind = type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "unknown"
            raise IdentityError(f"the key is {kind}, not Ed25519", hint=_PEM_HINT)
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> Identity:
        try:
            # fstat on the open descriptor, so the mode checked is that of the file read.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise IdentityError(
                f"key file {path} does not exist",
                hint="run `gate id import` or let `gate up` generate one",
            ) from e
        except OSError as e:
            raise IdentityError(f"cannot open key file {path}: {e.strerror}") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise IdentityError(f"key file {path} is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise IdentityError(
                    f"key file {path} has mode {mode:04o}: other users may read the key",
                    hint=f"chmod 600 {path}",
                )
            data = _read_at_most(fd, _MAX_KEY_FILE + 1)
        except OSError as e:
            raise IdentityError(f"cannot read key file {path}: {e.strerror}") from e
        finally:
            os.close(fd)
        if len(data) > _MAX_KEY_FILE:
            raise IdentityError(f"key file {path} is corrupt: too large for a key", hint=_PEM_HINT)
        try:
            return cls.from_pem(data)
        except IdentityError as e:
            raise IdentityError(f"key file {path} is corrupt: {e.message}", hint=e.hint) from e

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[Identity, bool]:
        """Load the key at ``path``, or generate and save one; the bool says it was created."""
        # lexists: a dangling symlink is reported by load() rather than written through.
        if os.path.lexists(path):
            return cls.load(path), False
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise IdentityError(f"cannot create directory {path.parent}: {e.strerror}") from e
        identity = cls.generate()
        try:
            identity._write(path, overwrite=False)
        except FileExistsError:
            # A second `gate up` created it first: adopt that key, never replace it with ours.
            return cls.load(path), False
        return identity, True

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the key as PKCS#8 PEM, atomically and with mode 0600 from the first byte."""
        try:
            self._write(path, overwrite=overwrite)
        except FileExistsError as e:
            raise IdentityError(
                f"key file {path} already exists",
                hint="it holds this node's identity; move it away first to replace it",
            ) from e

    def _write(self, path: Path, *, overwrite: bool) -> None:
        try:
            write_secret(path, self.to_pem(), overwrite=overwrite)
        except FileExistsError:
            raise  # the callers tell a key that is there already from a failed write
        except OSError as e:
            directory = path.parent
            raise IdentityError(
                f"cannot write key file {path}: {e.strerror}",
                hint=f"make {directory} a directory writable by this user, or use another dataDir",
            ) from e

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )

    @property
    def seed(self) -> bytes:
        return self._key.private_bytes_raw()

    @property
    def node_id(self) -> NodeId:
        return self._node_id

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"Identity({self._node_id.peer_id})"


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def verify(node_id: NodeId, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``node_id``'s signature of ``data``; a bad one gives False."""
    try:
        Ed25519PublicKey.from_public_bytes(node_id.public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
