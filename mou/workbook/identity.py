"""The signed identity a template carries: instrument, form version, cycle, state, language.

The token is ``mou1.<base64url JSON>.<hex HMAC-SHA256>``; the same token is written to custom
document properties, a veryHidden sheet and a defined name, so a return is matched to its
request without a person sorting mail, and an edited identity is detected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass

PREFIX = "mou1"


@dataclass(frozen=True)
class TemplateIdentity:
    instrument: str
    form_version: int
    cycle_id: int
    state: str
    language: str


class IdentityError(ValueError):
    """The token is missing, malformed or not signed with this service's secret."""


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign_identity(identity: TemplateIdentity, secret: str) -> str:
    body = json.dumps(asdict(identity), sort_keys=True, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{PREFIX}.{payload}.{_signature(secret, payload)}"


def verify_identity(token: str, secret: str) -> TemplateIdentity:
    """The identity in a token signed with ``secret``; IdentityError otherwise."""
    parts = token.strip().split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != PREFIX:
        raise IdentityError("malformed")
    _, payload, signature = parts
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise IdentityError("signature")
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
