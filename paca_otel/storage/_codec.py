"""The codec of stored payloads: JSON once, and AES-GCM encryption with a key from settings.

Every table module (alert state, outbox, later history and audit) stores its payloads through
one :class:`Codec`, so serialisation happens once per row and, with ``storage_key`` set
(``PACA_OTEL_STORAGE_KEY``), every table is encrypted at rest the same way: label values,
annotations, silence comments and notification bodies never reach the file in clear.

- Without a key a payload is compact JSON text; with one it is a BLOB
  ``b"PE1" + nonce(12) + AES-GCM(json)`` whose associated data is the row's context (the table),
  so a ciphertext moved to another table does not decrypt.
- Columns that are queried by equality (an outbox row's group key) go through
  :meth:`Codec.index`: an HMAC of the value with a key derived from the storage key, so
  equality still works and the value stays secret.
- The key may be 32 random bytes in URL-safe base64 (``python -c "import base64, os;
  print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``) or a passphrase of at least 16
  characters, stretched once with scrypt. Sub-keys for encryption and indexing come from HKDF.

Encryption is done by ``cryptography`` (an optional extra: ``pip install
'paca-otel[encryption]'``); nothing here is hand-written cryptography.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import TYPE_CHECKING, Any

from paca_otel.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = ["Codec"]

_MAGIC = b"PE1"
_NONCE = 12
_SALT = b"paca-otel storage key v1"


def _master_key(secret: str) -> bytes:
    """32 bytes from a base64 key, or from a passphrase via scrypt."""
    if not secret:
        msg = "storage_key must not be empty (unset it to store without encryption)"
        raise ConfigError(msg)
    try:
        raw = base64.urlsafe_b64decode(secret.encode() + b"=" * (-len(secret) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    if len(secret) < 16:
        msg = (
            "storage_key must be 32 random bytes in URL-safe base64 or a passphrase of at least "
            f"16 characters (got {len(secret)} characters; the value is not shown)"
        )
        raise ConfigError(msg)
    return hashlib.scrypt(secret.encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32)


class Codec:
    """Serialise stored payloads once (JSON) and, with a key, encrypt them (AES-GCM).

    Args:
        key: The storage key (``SecretStr`` from settings, or text); ``None`` stores JSON text.

    Raises:
        ConfigError: the key is too short, or ``cryptography`` is not installed.
    """

    def __init__(self, key: SecretStr | str | None = None) -> None:
        self._aead: Any = None
        self._index_key = b""
        if key is None:
            return
        secret = key if isinstance(key, str) else key.get_secret_value()
        master = _master_key(secret)
        try:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        except ImportError:
            msg = (
                "storage_key is set but the 'cryptography' package is missing: "
                "pip install 'paca-otel[encryption]'"
            )
            raise ConfigError(msg) from None

        def derive(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(master)

        self._aead = AESGCM(derive(b"paca-otel aes-gcm"))
        self._index_key = derive(b"paca-otel index")

    @classmethod
    def from_settings(cls, settings: Any) -> Codec:
        """The codec for ``settings.storage_key`` (absent or ``None``: no encryption)."""
        return cls(getattr(settings, "storage_key", None))

    @property
    def encrypted(self) -> bool:
        """Whether payloads are encrypted."""
        return self._aead is not None

    def encode(self, value: Any, context: str) -> str | bytes:
        """``value`` as stored: JSON text, or its AES-GCM ciphertext bound to ``context``."""
        text = json.dumps(value, separators=(",", ":"), allow_nan=True)
        if self._aead is None:
            return text
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, text.encode(), context.encode())  # type: ignore[no-any-return]  # AESGCM.encrypt returns bytes

    def decode(self, stored: str | bytes, context: str) -> Any:
        """Inverse of :meth:`encode`; plaintext rows written before a key was set still read.

        Raises:
            StorageError: the row is encrypted and no key, or another key, is set.
        """
        if isinstance(stored, bytes) and stored.startswith(_MAGIC):
            if self._aead is None:
                msg = (
                    f"stored {context} rows are encrypted but storage_key is not set "
                    "(PACA_OTEL_STORAGE_KEY): set the key they were written with"
                )
                raise StorageError(msg)
            nonce = stored[len(_MAGIC) : len(_MAGIC) + _NONCE]
            from cryptography.exceptions import InvalidTag

            try:
                plain = self._aead.decrypt(nonce, stored[len(_MAGIC) + _NONCE :], context.encode())
            except InvalidTag:
                msg = (
                    f"stored {context} rows do not decrypt with this storage_key: the key "
                    "differs from the one they were written with, or the row was tampered with"
                )
                raise StorageError(msg) from None
            return json.loads(plain)
        if isinstance(stored, bytes):
            stored = stored.decode()
        return json.loads(stored)

    def index(self, value: str) -> str:
        """A column value that equality queries can use: ``value`` itself, or its HMAC."""
        if self._aead is None:
            return value
        return "h:" + hmac.new(self._index_key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"Codec(encrypted={self.encrypted})"
