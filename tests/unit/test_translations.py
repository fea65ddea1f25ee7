"""A state's own translation of a narrative, given in the same cell after a language tag."""

from __future__ import annotations

import pytest

from mou.reporting.consolidation.narratives import translations_in


@pytest.mark.parametrize(
    ("text", "original", "given"),
    [
        ("Патрули усилены.", "Патрули усилены.", {}),
        (
            "Патрули усилены.\n[en]\nPatrols were stepped up.",
            "Патрули усилены.",
            {"en": "Patrols were stepped up."},
        ),
        (
            "Патрули усилены.\n  [EN] \nPatrols stepped up.\n\n[fr]\nPatrouilles renforcées.\n",
            "Патрули усилены.",
            {"en": "Patrols stepped up.", "fr": "Patrouilles renforcées."},
        ),
        # Only the first translation into a language counts; an empty one is none.
        ("Текст.\n[en]\nFirst.\n[en]\nSecond.", "Текст.", {"en": "First."}),
        ("Текст.\n[en]\n\n", "Текст.", {}),
        # A tag inside a line is words, not a mark; an unknown tag too.
        ("See [en] below.\n[de]\nText.", "See [en] below.\n[de]\nText.", {}),
        # Nothing before the first mark: the text stands as written.
        ("[en]\nOnly English.", "[en]\nOnly English.", {}),
    ],
)
def test_translations_after_a_language_tag(text: str, original: str, given: dict) -> None:
    assert translations_in(text) == (original, given)
