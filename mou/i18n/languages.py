"""The languages the service writes in, and how a translated text is picked for one of them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mou.errors import Refused

LANGUAGES = ("en", "ru", "fr")
# English is the source language: every translated text has it, so it is the fallback.
FALLBACK = "en"
# British English dates and spelling, as in UN documents ("31 March 2025").
BABEL_LOCALES = {"en": "en_GB", "ru": "ru", "fr": "fr"}
LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "fr": "Français"}
# "In <language>" as a text in each language writes it ("на английском языке").
IN_LANGUAGE = {
    "en": {"en": "in English", "ru": "in Russian", "fr": "in French"},
    "ru": {"en": "на английском языке", "ru": "на русском языке", "fr": "на французском языке"},
    "fr": {"en": "en anglais", "ru": "en russe", "fr": "en français"},
}
# The name of each language as a text in another language writes it ("Original: English").
LANGUAGE_NAMES_IN = {
    "en": {"en": "English", "ru": "Russian", "fr": "French"},
    "ru": {"en": "английский", "ru": "русский", "fr": "французский"},
    "fr": {"en": "anglais", "ru": "russe", "fr": "français"},
}
_CYRILLIC = re.compile("[\u0400-\u04ff]")


def is_cyrillic(text: str) -> bool:
    """Whether ``text`` has Cyrillic letters (written in Russian, for the service)."""
    return bool(_CYRILLIC.search(text))


def check_language(language: str) -> str:
    """``language`` if the service writes in it, else a refusal naming the ones it does."""
    if language not in LANGUAGES:
        raise Refused(f"no documents in language {language!r}: use one of {', '.join(LANGUAGES)}")
    return language


def pick(translated: Mapping[str, str] | None, language: str) -> str:
    """The text in ``language``, else English, else any (catalogue rows may lack ru or fr)."""
    if not translated:
        return ""
    return (
        translated.get(language)
        or translated.get(FALLBACK)
        or next((text for text in translated.values() if text), "")
    )


# A line holding only a language tag ("[en]") starts the state's own translation of the text
# above it into that language (the workbook's instructions say so).
_TRANSLATION_MARK = re.compile(r"^[ \t]*\[(en|ru|fr)\][ \t\r]*$", re.IGNORECASE | re.MULTILINE)


def translations_in(text: str) -> tuple[str, dict[str, str]]:
    """A narrative as the state wrote it: the original, and the translations it added after a
    line "[en]", "[ru]" or "[fr]" (the first of a language counts; empty ones do not)."""
    marks = list(_TRANSLATION_MARK.finditer(text))
    if not marks:
        return text, {}
    original = text[: marks[0].start()].strip()
    given: dict[str, str] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : following.start() if following else len(text)].strip()
        if body:
            given.setdefault(mark.group(1).lower(), body)
    if not original:  # nothing before the first tag: no original, so the text stands as is
        return text.strip(), {}
    return original, given
