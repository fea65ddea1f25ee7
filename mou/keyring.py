"""The service's secret and the keys derived from it.

One secret signs everything: ``MOU_SECRET`` when configured, otherwise a random one generated
on first start and kept in ``var/secret`` (owner-only), so the embedded defaults are secure by
themselves. The constant the source once used as a default is public and is refused.

Each use has its own key derived from the secret (workbook identities, portal links, CSRF
tokens), so a token of one kind can never pass for another. Long-lived tokens
(workbooks and links sent to ministries) carry the *key id* of the secret that signed them; a
rotated secret is configured with the old ones in ``MOU_PREVIOUS_SECRETS``, and what was sent
before still verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

# Public (it was in the source): never a secret of a running service.
DEVELOPMENT_SECRET = "embedded-development-secret-change-me"
MIN_SECRET_LENGTH = 16
SECRET_FILE = "secret"

WORKBOOK_IDENTITY = "workbook-identity"
PORTAL_LINK = "portal-link"
CSRF = "csrf"


def derive_key(secret: str, purpose: str) -> bytes:
    """The key of one use of the secret (HMAC-SHA256 of the purpose's label)."""
    return hmac.new(secret.encode("utf-8"), f"mou-key|{purpose}".encode(), hashlib.sha256).digest()


def key_id(secret: str) -> str:
    """Eight hex digits that name a secret without revealing it."""
    return hmac.new(secret.encode("utf-8"), b"mou-key-id", hashlib.sha256).hexdigest()[:8]


class Keyring:
    """The current secret, which signs, and earlier ones, which still verify."""

    def __init__(self, current: str, previous: Sequence[str] = ()) -> None:
        self.current = current
        self.secrets = (current, *(s for s in previous if s and s != current))
        self._by_id = {key_id(s): s for s in self.secrets}

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def signing_key(self, purpose: str) -> tuple[str, bytes]:
        """The key id and key to sign with."""
        return self.current_id, derive_key(self.current, purpose)

    def verifying_key(self, purpose: str, kid: str) -> bytes | None:
        """The key that signed a token naming ``kid``, or None if no known secret has that id."""
        secret = self._by_id.get(kid)
        return derive_key(secret, purpose) if secret is not None else None


def check_secret(secret: str, variable: str = "MOU_SECRET") -> str:
    """``secret`` if it can sign for a running service; ValueError naming the variable if not."""
    if secret == DEVELOPMENT_SECRET:
        raise ValueError(
            f"{variable} is the public development value from the source: set a random secret "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`) or leave it "
            "unset to have one generated under var/"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{variable} must be at least {MIN_SECRET_LENGTH} characters long")
    return secret


def load_or_create_secret(var_dir: Path) -> str:
    """The secret kept in ``var_dir/secret``, generated (owner-only) if there is none yet.

    Two processes starting at once agree: the file is created exclusively, and the loser of
    the race reads the winner's.
    """
    path = var_dir / SECRET_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    if text:
        return check_secret(text, str(path))
    var_dir.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(fresh + "\n")
    try:
        os.link(temporary, path)  # complete or absent, and fails if another process won
    except FileExistsError:
        pass
    except OSError:
        # No hard links on this filesystem (SMB, some FUSE): create the file exclusively
        # instead; a reader that comes in between finds it empty for a moment and waits.
        _create_exclusively(path, fresh)
    finally:
        temporary.unlink()
    return check_secret(_read_when_written(path), str(path))


def _create_exclusively(path: Path, secret: str) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")


def _read_when_written(path: Path, patience: float = 5.0) -> str:
    waited = 0.0
    while True:
        text = path.read_text(encoding="ascii").strip()
        if text or waited >= patience:
            return text
        time.sleep(0.05)
        waited += 0.05
