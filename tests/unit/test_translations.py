"""A state's own translation of a narrative, given in the same cell after a language tag."""

from __future__ import annotations

import datetime as dt

import pytest

from mou.i18n.languages import translations_in


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
        # A cell saved with CR LF line ends.
        ("Текст.\r\n[en]\r\nText.", "Текст.", {"en": "Text."}),
        # Nothing before the first mark: the text stands as written.
        ("[en]\nOnly English.", "[en]\nOnly English.", {}),
    ],
)
def test_translations_after_a_language_tag(text: str, original: str, given: dict) -> None:
    assert translations_in(text) == (original, given)


def test_a_date_in_a_narrow_column_breaks_only_before_the_year() -> None:
    from mou.documents.pdf import date_cell
    from mou.i18n.formatting import Formatter

    moment = dt.datetime(2027, 3, 13, 9, 0, tzinfo=dt.UTC)
    for language, first in (("ru", "13\u00a0мар."), ("en", "13\u00a0Mar"), ("fr", "13\u00a0mars")):
        cell = date_cell(Formatter(language).date(moment, "medium"))
        # The one plain space left is before the year (Babel keeps "2027 г." together).
        assert cell.startswith(first) and cell.split(" ")[1].startswith("2027"), cell
        assert cell.count(" ") == 1, cell
