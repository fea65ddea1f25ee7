"""Fixed texts by language: workbooks, emails and validation feedback (forms/messages.yaml),
and the portal's pages (forms/_portal.yaml; the underscore keeps it out of the form specs)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mou.i18n.languages import FALLBACK


@lru_cache(maxsize=4)
def _catalogue(forms_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    return yaml.safe_load((forms_dir / "messages.yaml").read_text(encoding="utf-8"))


class Messages:
    """Look up ``ui`` and ``issues`` texts in one language, filling {placeholders}."""

    def __init__(self, forms_dir: Path, language: str) -> None:
        self._texts = _catalogue(forms_dir)
        self.language = language

    def _get(self, group: str, key: str, params: dict[str, Any]) -> str:
        entry = self._texts[group][key]
        template = entry.get(self.language) or entry[FALLBACK]
        return template.format(**params) if params else template

    def ui(self, key: str, **params: Any) -> str:
        return self._get("ui", key, params)

    def issue(self, code: str, **params: Any) -> str:
        return self._get("issues", code, params)

    def email(self, key: str, **params: Any) -> str:
        return self._get("email", key, params)


@lru_cache(maxsize=4)
def _portal_texts(path: Path) -> dict[str, dict[str, str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data["portal"]


class PortalTexts:
    """The portal's fixed texts in one language, {placeholders} filled."""

    def __init__(self, forms_dir: Path, language: str) -> None:
        self._texts = _portal_texts(forms_dir / "_portal.yaml")
        self.language = language

    def get(self, key: str, **params: Any) -> str:
        entry = self._texts[key]
        template = entry.get(self.language) or entry[FALLBACK]
        return template.format(**params) if params else template

    __call__ = get

    def has(self, key: str) -> bool:
        return key in self._texts
