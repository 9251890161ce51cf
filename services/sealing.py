"""Secrets we must be able to read back (client bots' signing and webhook secrets, a Worker client's key) are
kept sealed at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a key derived from
`api.secret_key`. A database copy without that setting reveals none of them."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(Exception):
    """A sealed value that this key cannot open (another api.secret_key, or tampered)."""


class Sealer:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 16:
            raise ValueError("api.secret_key must be at least 16 characters")
        # A fixed, purpose-bound derivation: the same setting opens what it sealed, in every process.
        digest = hashlib.sha256(b"titip/api-secrets/v1\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SealBroken("cannot open a sealed secret: is api.secret_key the one it was sealed with?") from exc
