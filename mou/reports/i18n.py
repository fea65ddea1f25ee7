"""Languages of the documents: gettext catalogues and Babel formatting.

The catalogues are the ``.po`` files under ``templates/reports/locale/``; they are compiled in
memory when first used, so a fresh clone needs no build step and no ``.mo`` file can drift from
its ``.po``. English is the source language.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

from mou.errors import Refused

LANGUAGES = ("en", "ru", "fr")
# British English dates and spelling, as in UN documents ("31 March 2025").
BABEL_LOCALES = {"en": "en_GB", "ru": "ru", "fr": "fr"}
DOMAIN = "messages"


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise Refused(f"no documents in language {language!r}: use one of {', '.join(LANGUAGES)}")
    return language


@lru_cache(maxsize=8)
def translations(locale_dir: Path, language: str) -> NullTranslations:
    """The gettext catalogue of ``language``, compiled from its .po file."""
    check_language(language)
    if language == "en":
        return NullTranslations()
    po_path = locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    try:
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=DOMAIN)
    except OSError as exc:
        raise Refused(f"the {language} catalogue {po_path} cannot be read: {exc}") from exc
    compiled = BytesIO()
    # Fuzzy entries are unchecked machine guesses: leave them out, English shows instead.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


class Formatter:
    """Numbers and dates written the way readers of ``language`` expect (1 475, 31 mars 2025)."""

    def __init__(self, language: str) -> None:
        self.language = check_language(language)
        self.locale = BABEL_LOCALES[language]

    def number(self, value: int | float | None) -> str:
        if value is None:
            return "–"
        return format_decimal(value, locale=self.locale)

    def signed(self, value: int | None) -> str:
        """A change with its sign: +398, −35 (true minus sign), 0."""
        if value is None:
            return "–"
        if value == 0:
            return self.number(0)
        sign = "+" if value > 0 else "\u2212"
        return sign + self.number(abs(value))

    def percent(self, share: float | None) -> str:
        if share is None:
            return "–"
        return format_percent(share, locale=self.locale)

    def date(self, value: dt.date | dt.datetime | str | None, style: str = "long") -> str:
        if value is None or value == "":
            return "–"
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
        return format_date(value, format=style, locale=self.locale)
