"""Turn what people type into typed values: '1 475', '1,475', '1475.0', '15.03.2026'...

Each function returns the value, or raises Unreadable with the message code that says why.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

EXCEL_EPOCH = dt.date(1899, 12, 30)
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']+")
_APPROXIMATE = re.compile(
    r"(?i)^(about|approx\.?|approximately|around|ca\.?|c\.|~|±|≈|>|<|over|under|"
    r"more than|less than|"
    r"около|примерно|приблизительно|более|менее|свыше|до|порядка|"
    r"environ|plus de|moins de|près de)\s*[\d\s.,]+|^[\d\s.,]+\s*(\+|\?|и более|et plus)$"
    r"|^\d[\d\s.,]*\s*[-–—]\s*\d[\d\s.,]*$"
)
_GROUPED_COMMA = re.compile(r"^\d{1,3}(,\d{3})+$")
_GROUPED_DOT = re.compile(r"^\d{1,3}(\.\d{3})+$")
_DATE_PATTERNS = ("%d.%m.%Y", "%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%y")
TRUE_WORDS = {"yes", "y", "true", "1", "да", "д", "oui", "o", "x", "✓"}
FALSE_WORDS = {"no", "n", "false", "0", "нет", "н", "non"}


class Unreadable(ValueError):
    """A value that cannot be read as the field's type; ``code`` names the message."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _text(raw: Any) -> str:
    return _SPACES.sub(" ", str(raw)).strip()


def is_blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _number_text(raw: str) -> str:
    text = raw.strip().lstrip("+")
    return _SPACES.sub("", text)


def to_integer(raw: Any) -> int:
    """An integer from a number or text; '1 475' and '1,475' are 1475, '9,99' is refused."""
    if isinstance(raw, bool):
        raise Unreadable("not_integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if raw.is_integer():
            return int(raw)
        raise Unreadable("not_integer")
    text = _text(raw)
    if _APPROXIMATE.search(text):
        raise Unreadable("approximate")
    compact = _number_text(text)
    if re.fullmatch(r"-?\d+", compact):
        return int(compact)
    if _GROUPED_COMMA.match(compact):
        return int(compact.replace(",", ""))
    if re.fullmatch(r"-?\d+[.,]0+", compact):
        return int(re.split(r"[.,]", compact)[0])
    if _GROUPED_DOT.match(compact):
        # 1.475 is 1475 in Russian or French typing and 1.475 in English: ask.
        raise Unreadable("ambiguous_number", example=compact.replace(".", ""))
    raise Unreadable("not_integer")


def to_decimal(raw: Any, language: str) -> float:
    """A decimal; ',' is the decimal mark in ru/fr typing, a thousands mark in en."""
    if isinstance(raw, bool):
        raise Unreadable("not_number")
    if isinstance(raw, int | float):
        return float(raw)
    text = _text(raw)
    if _APPROXIMATE.search(text):
        raise Unreadable("approximate")
    compact = _number_text(text)
    if "," in compact and "." in compact:
        # The last mark is the decimal one: 1,234.5 and 1.234,5 both mean 1234.5.
        if compact.rfind(",") > compact.rfind("."):
            compact = compact.replace(".", "").replace(",", ".")
        else:
            compact = compact.replace(",", "")
    elif "," in compact:
        if _GROUPED_COMMA.match(compact) and language == "en":
            compact = compact.replace(",", "")
        elif compact.count(",") == 1:
            compact = compact.replace(",", ".")
        else:
            raise Unreadable("not_number")
    try:
        value = Decimal(compact)
    except InvalidOperation as exc:
        raise Unreadable("not_number") from exc
    if not value.is_finite():
        raise Unreadable("not_number")
    return float(value)


def to_date(raw: Any) -> dt.date:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 1 <= raw < 2958466:
        return EXCEL_EPOCH + dt.timedelta(days=int(raw))  # a date typed into a General cell
    text = _text(raw).rstrip(" г.").strip()
    for pattern in _DATE_PATTERNS:
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise Unreadable("not_date")


def to_year(raw: Any) -> int:
    if isinstance(raw, dt.date):
        return raw.year
    try:
        value = to_integer(re.sub(r"(?i)\s*(г\.?|год|year|an)$", "", _text(raw)))
    except Unreadable as exc:
        raise Unreadable("approximate" if exc.code == "approximate" else "not_year") from exc
    if not 1000 <= value <= 9999:
        raise Unreadable("not_year")
    return value


def to_boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = _text(raw).lower().rstrip(".")
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Unreadable("not_boolean")


def _fold(text: str) -> str:
    return _text(text).casefold().replace("ё", "е")


_BRACKETED = re.compile(r"\s*\(([^()]*)\)\s*")


def _spellings(label: str) -> list[str]:
    """A label and what people type for it: "архар (аргали)" is also "архар" and "аргали"."""
    found = [label]
    synonyms = _BRACKETED.findall(label)
    bare = _BRACKETED.sub(" ", label).strip()
    if synonyms and bare:
        found.append(bare)
        found += [s for s in synonyms if s.strip()]
    return found


def choice_index(options: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """Map every accepted spelling (value, labels in any language, each label without its
    bracketed synonym and the synonym alone) to the stored value, ignoring case.

    A full label wins over a shortened one, and a shortened one that two options share is
    kept by the first: it is then only accepted in full for the other.
    """
    index: dict[str, str] = {}
    shortened: list[tuple[str, str]] = []
    for value, labels in options:
        index[_fold(value)] = value
        for label in labels:
            if not label:
                continue
            full, *short = _spellings(label)
            index.setdefault(_fold(full), value)
            shortened += [(_fold(spelling), value) for spelling in short]
    for spelling, value in shortened:
        index.setdefault(spelling, value)
    return index


def to_choice(raw: Any, index: dict[str, str]) -> str:
    value = index.get(_fold(str(raw)))
    if value is None:
        raise Unreadable("unknown_choice")
    return value


# Several choices in one cell: separated by ";", "," or new lines. A comma inside brackets
# belongs to a label ("kulan (Asiatic wild ass, onager)").
_SEPARATORS = re.compile(r"[;\n\r]+|,(?![^()]*\))")


def to_choices(raw: Any, index: dict[str, str]) -> list[str]:
    """Every choice named in a cell, in order and once each; Unreadable("unknown_choices")
    names the parts that are not options (``unknown``)."""
    text = str(raw)
    if _fold(text) in index:  # one label that holds a separator itself
        return [index[_fold(text)]]
    values: list[str] = []
    unknown: list[str] = []
    for part in _SEPARATORS.split(text):
        if not part.strip():
            continue
        value = index.get(_fold(part))
        if value is None:
            unknown.append(_text(part))
        elif value not in values:
            values.append(value)
    if unknown:
        raise Unreadable("unknown_choices", unknown="; ".join(unknown)[:120])
    return values


def to_text(raw: Any) -> str:
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat() if raw.time() == dt.time() else raw.isoformat()
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


# One address, as RFC 5322 allows it in practice: no spaces, one @, a dotted domain.
_EMAIL = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\].]+")


def to_email(raw: Any) -> str:
    """One email address as typed (trimmed, a ``mailto:`` dropped), or Unreadable."""
    text = _text(raw).strip().removeprefix("mailto:").strip()
    if not _EMAIL.fullmatch(text) or ".." in text:
        raise Unreadable("not_an_email")
    return text
