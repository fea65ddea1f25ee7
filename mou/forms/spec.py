"""The schema of a form specification, checked when the YAML is loaded."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from mou.errors import Refused

FieldType = Literal[
    "text", "integer", "decimal", "date", "year", "choice", "multi_choice", "boolean", "table"
]
Bound = int | float | Literal["period_start", "period_end"]
Severity = Literal["error", "warning"]

# A defined name must not look like a cell reference (A1, XFD10, R1C1) or Excel rejects it.
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_CELL_LIKE = re.compile(r"^([a-z]{1,3}[0-9]+|r[0-9]*c[0-9]*)$")


class Text(BaseModel):
    """A text in each of the service's languages."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    en: str
    ru: str
    fr: str

    def __call__(self, language: str) -> str:
        return getattr(self, language, None) or self.en


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: str
    label: Text


class FieldSpec(BaseModel):
    """A question (or, for ``type: table``, a repeating table of questions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    type: FieldType
    label: Text
    help: Text | None = None
    required: bool = False
    carry_forward: bool = False
    max_length: int | None = None
    format: Literal["email"] | None = None  # for text: what the text must look like
    min: Bound | None = None
    max: Bound | None = None
    choices: str | None = None
    multiline: bool = False
    rows: int | None = None
    row_source: str | None = None
    # Words in a number cell ("около 300", "нет данных"): None takes the form's rule.
    not_a_number: Severity | None = None
    columns: tuple[FieldSpec, ...] = ()

    @model_validator(mode="after")
    def _shape(self) -> FieldSpec:
        if not _KEY.match(self.key) or _CELL_LIKE.match(self.key):
            raise ValueError(f"key {self.key!r} cannot be an Excel defined name")
        if self.format and self.type != "text":
            raise ValueError(f"{self.key}: only a text field has a format")
        if self.type in ("choice", "multi_choice") and not self.choices:
            raise ValueError(f"{self.key}: a {self.type} field needs choices")
        if self.type == "table":
            if not self.columns:
                raise ValueError(f"{self.key}: a table needs columns")
            if not self.row_source and not self.rows:
                raise ValueError(f"{self.key}: a free table needs rows")
            if any(c.type == "table" for c in self.columns):
                raise ValueError(f"{self.key}: tables do not nest")
        elif self.columns or self.row_source or self.rows:
            raise ValueError(f"{self.key}: only tables have columns, rows or row_source")
        if self.not_a_number and self.type not in ("integer", "decimal", "year"):
            raise ValueError(f"{self.key}: not_a_number is for number and year fields")
        return self

    @property
    def is_table(self) -> bool:
        return self.type == "table"


# Excel refuses a sheet name longer than 31 characters or holding any of these.
SHEET_NAME_LIMIT = 31
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


class Section(BaseModel):
    """A sheet of the workbook. ``tab``: the sheet tab's short title, where ``title`` is too
    long for Excel's 31 characters with the section's number in front."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str
    title: Text
    tab: Text | None = None
    help: Text | None = None
    fields: tuple[FieldSpec, ...]

    def tab_title(self, index: int, language: str) -> str:
        """The sheet tab of the ``index``-th section (from 1): "3. Population status"."""
        return f"{index}. {(self.tab or self.title)(language)}"


class FormSpec(BaseModel):
    """One instrument's report form. ``version`` rises whenever the questions change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    form_id: str
    instrument: str
    version: int
    title: Text
    instructions: Text
    # One rule for every kind of words in a number cell, approximate ("около 300") or none
    # ("нет данных"): an error asks for a single figure; a warning accepts the return and
    # says the value (the row, in a table) is not counted. A field may override it.
    not_a_number: Severity = "error"
    choices: dict[str, tuple[Choice, ...]] = {}
    sections: tuple[Section, ...]

    @model_validator(mode="after")
    def _tabs(self) -> FormSpec:
        for language in Text.model_fields:
            tabs: set[str] = set()
            for index, section in enumerate(self.sections, start=1):
                tab = section.tab_title(index, language)
                if len(tab) > SHEET_NAME_LIMIT or _SHEET_NAME_FORBIDDEN.search(tab):
                    raise ValueError(
                        f"section {section.key}: the sheet tab {tab!r} ({language}) is over "
                        f"{SHEET_NAME_LIMIT} characters or holds one of [ ] : * ? / \\; "
                        "give the section a shorter `tab`"
                    )
                if "'" in tab:
                    # Allowed by Excel, but doubled in every reference to the sheet, which
                    # tools reading defined names trip over: write the typographic ’.
                    raise ValueError(f"section {section.key}: write ’ for ' in the tab {tab!r}")
                if tab.casefold() in tabs:
                    raise ValueError(f"section {section.key}: the sheet tab {tab!r} repeats")
                tabs.add(tab.casefold())
        return self

    @model_validator(mode="after")
    def _references(self) -> FormSpec:
        seen: set[str] = set()
        for field in self.fields:
            if field.key in seen:
                raise ValueError(f"field key {field.key!r} is used twice")
            seen.add(field.key)
            parts = [field, *field.columns]
            if field.row_source and not field.row_source.startswith("@"):
                parts.append(field.model_copy(update={"choices": field.row_source}))
            for part in parts:
                name = part.choices
                if name and not name.startswith("@") and name not in self.choices:
                    raise ValueError(f"{field.key}: unknown choice list {name!r}")
            columns = [c.key for c in field.columns]
            if len(set(columns)) != len(columns):
                raise ValueError(f"{field.key}: column keys repeat")
        return self

    @property
    def fields(self) -> list[FieldSpec]:
        return [field for section in self.sections for field in section.fields]

    def field(self, key: str) -> FieldSpec:
        for field in self.fields:
            if field.key == key:
                return field
        raise KeyError(key)


def _load(path: Path) -> FormSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise Refused(f"form specification {path} cannot be read: {exc}".splitlines()[0]) from exc
    try:
        return FormSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(f"form specification {path} is malformed at {where}: {first['msg']}") from exc


@lru_cache(maxsize=16)
def load_forms(forms_dir: Path) -> dict[str, FormSpec]:
    """Every form specification in the folder, by instrument code."""
    forms: dict[str, FormSpec] = {}
    for path in sorted(forms_dir.glob("*.yaml")):
        if path.name.startswith("_") or path.name == "messages.yaml":
            continue
        form = _load(path)
        forms[form.instrument] = form
    return forms


def load_form(forms_dir: Path, instrument: str) -> FormSpec:
    forms = load_forms(forms_dir)
    if instrument not in forms:
        known = ", ".join(sorted(forms)) or "none"
        raise Refused(f"no form for instrument {instrument!r} (known: {known})")
    return forms[instrument]
