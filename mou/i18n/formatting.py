"""Numbers and dates written the way readers of a language expect (1 475, 31 mars 2025)."""

from __future__ import annotations

import datetime as dt

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent

from mou.clock import as_utc
from mou.i18n.languages import BABEL_LOCALES, check_language


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
            value = as_utc(value).date()  # type: ignore[union-attr]
        return self._first(format_date(value, format=style, locale=self.locale), value.day)

    def _first(self, text: str, day: int) -> str:
        # French writes the first of the month as an ordinal: 1er décembre 2026.
        if self.language == "fr" and day == 1 and text.startswith("1 "):
            return "1er" + text[1:]
        return text

    def moment(self, value: dt.datetime | None) -> str:
        """A moment to the minute, in UTC and saying so: 1 Dec 2026, 09:30 UTC."""
        value = as_utc(value)
        if value is None:
            return "—"
        text = format_datetime(value, "d MMM y, HH:mm", tzinfo=dt.UTC, locale=self.locale)
        return f"{self._first(text, value.day)} UTC"
