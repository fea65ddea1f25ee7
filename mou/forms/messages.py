"""Fixed texts of templates and validation feedback (forms/messages.yaml), by language."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

FALLBACK = "en"


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
