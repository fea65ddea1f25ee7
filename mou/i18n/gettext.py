"""The documents' gettext catalogues (templates/reports/locale), compiled in memory.

The catalogues are the ``.po`` files under ``templates/reports/locale/``; they are compiled in
memory when first used, so a fresh clone needs no build step and no ``.mo`` file can drift from
its ``.po``. English is the source language.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from mou.errors import Refused
from mou.i18n.languages import check_language

DOMAIN = "messages"


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
