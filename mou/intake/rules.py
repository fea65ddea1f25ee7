"""The rules that decide a return, as plain functions over plain values (no database).

``decide.py`` gathers the facts from the database and applies these; the rules themselves are
tested without one (tests/unit/test_intake_rules.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mou.i18n.languages import LANGUAGES
from mou.keyring import Keyring
from mou.workbook.extract import Extraction
from mou.workbook.identity import IdentityError, TemplateIdentity, verify_identity


def identify(extraction: Extraction, keys: Keyring | str) -> TemplateIdentity | str:
    """The template's verified identity, or the code of the problem with it.

    The identity is stored three times (custom property, hidden sheet, defined name); every
    copy found must verify and all must agree, and the visible metadata must match them.
    """
    tokens = [t for t in extraction.tokens.values() if t]
    if not tokens:
        return "no_identity"
    identities = set()
    for token in tokens:
        try:
            identities.add(verify_identity(token, keys))
        except IdentityError:
            return "identity_tampered"
    if len(identities) != 1:
        return "identity_tampered"
    identity = identities.pop()
    meta = extraction.meta
    visible = {
        "instrument": identity.instrument,
        "form_version": identity.form_version,
        "cycle_id": identity.cycle_id,
        "state": identity.state,
        "language": identity.language,
    }
    for key, value in visible.items():
        if key in meta and str(meta[key]).strip() != str(value):
            return "identity_tampered"
    return identity


def claimed_language(tokens: Mapping[str, str | None]) -> str | None:
    """The language an identity token claims, read without trusting it (only to choose words
    for a refusal of a token that does not verify)."""
    for token in tokens.values():
        try:
            parts = str(token).split(".")
            payload = parts[2] if parts[0] == "mou2" else parts[1]  # mou2 carries a key id
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            if data.get("language") in LANGUAGES:
                return data["language"]
        except (IndexError, ValueError, AttributeError, TypeError):
            continue
    return None


@dataclass(frozen=True)
class RequestFacts:
    """What the database says about the cycle and request a verified identity points to."""

    cycle_found: bool  # a cycle with the identity's id and instrument exists
    cycle_open: bool
    form_version: int | None  # the cycle's form version
    cycle_id: int | None
    state_id: int | None  # the identity's state, if the catalogue knows it
    requested: bool  # the state was asked to report in this cycle
    expected_cycle_id: int | None = None  # where it arrived says which cycle (a portal link)
    expected_state_id: int | None = None  # where it arrived, or who sent it, says which state


def request_problem(identity: TemplateIdentity, facts: RequestFacts) -> str | None:
    """Why a genuine template cannot be accepted for its request, as an issue code, or None.

    The order matters: a return for the wrong cycle or state is named as such before its
    cycle being closed or its form being outdated.
    """
    if not facts.cycle_found:
        return "unknown_cycle"
    if facts.expected_cycle_id and facts.expected_cycle_id != facts.cycle_id:
        return "wrong_cycle"
    if facts.expected_state_id and facts.state_id and facts.expected_state_id != facts.state_id:
        return "wrong_state"
    if not facts.cycle_open:
        return "cycle_closed"
    if identity.form_version != facts.form_version:
        return "outdated_form"
    if not facts.requested:
        return "not_requested"
    return None


def version_for(new_id: int, accepted: Iterable[tuple[int, int | None]]) -> int | None:
    """The version number of a newly accepted return, or None if it takes none.

    ``accepted`` are (submission id, version) of the state's other accepted returns in the
    cycle. Numbers follow the order returns were received (a larger submission id is a later
    arrival), as supersession does, and are never changed once given (a receipt announced
    them): a return accepted after a later arrival of its state was already accepted never
    counts, so it takes no number, like a refused one (its receipt number is its submission
    id). Otherwise it takes the next number, 1 for the first.
    """
    others = [(other, version) for other, version in accepted if other != new_id]
    if any(other > new_id for other, _ in others):
        return None
    return max((version for _, version in others if version is not None), default=0) + 1


@dataclass(frozen=True)
class Supersession:
    """How a newly accepted return changes which of a state's returns counts."""

    superseded_by: int | None  # a newer-received accepted return already counts instead
    supersedes: tuple[int, ...]  # older accepted returns that stop counting
    successor: int  # what those older returns are superseded by


def supersession(new_id: int, counted: Iterable[int]) -> Supersession:
    """The latest *received* accepted return counts, whatever order they were decided in.

    ``counted`` are the state's other accepted returns not yet superseded in this cycle.
    Submission ids are given in the order returns were recorded, so a larger id is a later
    arrival.
    """
    others = [other for other in counted if other != new_id]
    newest = max((other for other in others if other > new_id), default=None)
    older = tuple(sorted(other for other in others if other < new_id))
    return Supersession(superseded_by=newest, supersedes=older, successor=newest or new_id)
