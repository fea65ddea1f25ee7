"""The rules that decide a return, without a database: identity, request match, versions,
which return counts."""

from __future__ import annotations

import dataclasses

import pytest

from mou.intake.rules import (
    RequestFacts,
    claimed_language,
    identify,
    request_problem,
    supersession,
    version_for,
)
from mou.workbook.extract import Extraction
from mou.workbook.identity import TemplateIdentity, sign_identity

SECRET = "a-test-secret-of-enough-length"
IDENTITY = TemplateIdentity("bukhara-deer", 1, 7, "KZ", "ru")


def extraction(tokens: dict[str, str | None], meta: dict[str, object] | None = None) -> Extraction:
    return Extraction(
        tokens=tokens,
        meta=dict(meta or {}),
        names={},
        oversized_names={},
        formula_cells=set(),
        warnings=[],
    )


def three_copies(token: str | None) -> dict[str, str | None]:
    return {"property": token, "sheet": token, "name": token}


def test_three_matching_copies_identify_the_template() -> None:
    token = sign_identity(IDENTITY, SECRET)
    assert identify(extraction(three_copies(token)), SECRET) == IDENTITY


def test_a_lost_copy_still_identifies_but_no_copy_at_all_does_not() -> None:
    token = sign_identity(IDENTITY, SECRET)
    assert identify(extraction({"property": None, "sheet": token, "name": None}), SECRET) == (
        IDENTITY
    )
    assert identify(extraction(three_copies(None)), SECRET) == "no_identity"


def test_copies_that_disagree_or_another_secret_are_tampering() -> None:
    token = sign_identity(IDENTITY, SECRET)
    other = sign_identity(dataclasses.replace(IDENTITY, state="UZ"), SECRET)
    assert identify(extraction({"property": token, "sheet": other}), SECRET) == (
        "identity_tampered"
    )
    foreign = sign_identity(IDENTITY, "another-secret-of-enough-length")
    assert identify(extraction(three_copies(foreign)), SECRET) == "identity_tampered"


def test_edited_visible_metadata_is_tampering() -> None:
    token = sign_identity(IDENTITY, SECRET)
    assert identify(extraction(three_copies(token), {"state": "KZ"}), SECRET) == IDENTITY
    assert identify(extraction(three_copies(token), {"state": "UZ"}), SECRET) == (
        "identity_tampered"
    )


def test_the_claimed_language_is_read_even_from_a_token_that_does_not_verify() -> None:
    forged = sign_identity(dataclasses.replace(IDENTITY, language="fr"), "not-our-secret-at-all")
    assert claimed_language({"sheet": forged}) == "fr"
    assert claimed_language({"sheet": "garbage", "name": None}) is None


FACTS = RequestFacts(
    cycle_found=True, cycle_open=True, form_version=1, cycle_id=7, state_id=3, requested=True
)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({}, None),
        ({"cycle_found": False}, "unknown_cycle"),
        ({"expected_cycle_id": 6}, "wrong_cycle"),
        ({"expected_state_id": 4}, "wrong_state"),
        ({"expected_state_id": 3, "expected_cycle_id": 7}, None),
        ({"cycle_open": False}, "cycle_closed"),
        ({"form_version": 2}, "outdated_form"),
        ({"requested": False}, "not_requested"),
        # A return for another state is named as such before its cycle being closed.
        ({"expected_state_id": 4, "cycle_open": False}, "wrong_state"),
        ({"cycle_open": False, "form_version": 2}, "cycle_closed"),
    ],
)
def test_which_request_problem_is_named(change: dict[str, object], problem: str | None) -> None:
    assert request_problem(IDENTITY, dataclasses.replace(FACTS, **change)) == problem


def test_versions_count_from_one_in_the_order_returns_were_received() -> None:
    assert version_for(4, []) == 1
    assert version_for(9, [(4, 1), (6, 2)]) == 3
    assert version_for(9, [(4, 1), (6, None), (7, 2)]) == 3  # 6 took none


def test_an_earlier_arrival_accepted_after_a_later_one_takes_no_number() -> None:
    # Return 5 arrived before 8 but was accepted after it: 8 keeps the number it was given.
    assert version_for(5, [(3, 1), (8, 2)]) is None
    assert version_for(5, [(5, None), (8, 1)]) is None  # itself among them: ignored


def test_a_later_arrival_supersedes_the_earlier_ones() -> None:
    change = supersession(9, [4, 6])
    assert change.superseded_by is None
    assert change.supersedes == (4, 6)
    assert change.successor == 9


def test_an_earlier_arrival_decided_late_does_not_count() -> None:
    # Return 5 arrived before 8 but was decided after it: 8 still counts.
    change = supersession(5, [3, 8])
    assert change.superseded_by == 8
    assert change.supersedes == (3,)
    assert change.successor == 8


def test_the_first_accepted_return_supersedes_nothing() -> None:
    change = supersession(2, [])
    assert (change.superseded_by, change.supersedes, change.successor) == (None, (), 2)
