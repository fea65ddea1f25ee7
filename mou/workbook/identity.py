"""The signed identity a template carries: instrument, form version, cycle, state, language.

The token is ``mou2.<key id>.<base64url JSON>.<hex HMAC-SHA256>``, signed with the key the
service derives for workbook identities (``mou.keyring``); the key id names the secret, so a
template sent before the secret was rotated still verifies. Templates made before key ids
(``mou1.<payload>.<signature>``, signed with the secret itself) verify too. The same token is
written to custom document properties, a veryHidden sheet and a defined name, so a return is
matched to its request without a person sorting mail, and an edited identity is detected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass

from mou.keyring import WORKBOOK_IDENTITY, Keyring

PREFIX = "mou2"
LEGACY_PREFIX = "mou1"
# Nothing but these characters: a token is compared byte for byte, never decoded loosely.
_TOKEN = re.compile(r"mou2\.([0-9a-f]{8})\.([A-Za-z0-9_-]{1,2000})\.([0-9a-f]{64})")
_LEGACY_TOKEN = re.compile(r"mou1\.([A-Za-z0-9_-]{1,2000})\.([0-9a-f]{64})")


@dataclass(frozen=True)
class TemplateIdentity:
    instrument: str
    form_version: int
    cycle_id: int
    state: str
    language: str


class IdentityError(ValueError):
    """The token is missing, malformed or not signed with this service's secret."""


def _keyring(keys: Keyring | str) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring(keys)


def _hexmac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()


def sign_identity(identity: TemplateIdentity, keys: Keyring | str) -> str:
    """The token of ``identity``, signed with the current secret's workbook key."""
    kid, key = _keyring(keys).signing_key(WORKBOOK_IDENTITY)
    body = json.dumps(asdict(identity), sort_keys=True, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{PREFIX}.{kid}.{payload}.{_hexmac(key, payload)}"


def verify_identity(token: str, keys: Keyring | str) -> TemplateIdentity:
    """The identity in a token signed by one of the service's secrets; IdentityError otherwise."""
    keyring = _keyring(keys)
    text = token.strip() if isinstance(token, str) else ""
    if match := _TOKEN.fullmatch(text):
        kid, payload, signature = match.groups()
        key = keyring.verifying_key(WORKBOOK_IDENTITY, kid)
        if key is None or not hmac.compare_digest(_hexmac(key, payload), signature):
            raise IdentityError("signature")
    elif match := _LEGACY_TOKEN.fullmatch(text):
        payload, signature = match.groups()
        if not any(
            hmac.compare_digest(_hexmac(secret.encode("utf-8"), payload), signature)
            for secret in keyring.secrets
        ):
            raise IdentityError("signature")
    else:
        raise IdentityError("malformed")
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return TemplateIdentity(
            instrument=str(data["instrument"]),
            form_version=int(data["form_version"]),
            cycle_id=int(data["cycle_id"]),
            state=str(data["state"]),
            language=str(data["language"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IdentityError("malformed") from exc
