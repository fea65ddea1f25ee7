"""Check an extracted workbook against its form: typed answers, errors and warnings.

Errors block acceptance; warnings are accepted and shown to the secretariat. Every issue
names its field, sheet and cell, in the template's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl.utils import get_column_letter

from mou.forms.spec import FieldSpec, FormSpec
from mou.i18n.languages import pick, translations_in
from mou.i18n.texts import Messages
from mou.workbook.convert import (
    Unreadable,
    choice_index,
    is_blank,
    to_boolean,
    to_choice,
    to_choices,
    to_date,
    to_decimal,
    to_email,
    to_integer,
    to_text,
    to_year,
)
from mou.workbook.extract import Extraction, NamedRange
from mou.workbook.layout import ROW_KEY_COLUMNS

WARNING_CODES = {"external_links", "extra_content", "future_date"}
# Words in a number cell: their severity is the form's rule (``not_a_number``), one for all.
NOT_A_NUMBER_CODES = {"approximate", "not_integer", "not_number", "not_year"}


@dataclass(frozen=True)
class Issue:
    severity: str  # error | warning
    code: str
    message: str
    field_key: str | None = None
    sheet: str | None = None
    cell: str | None = None


@dataclass(frozen=True)
class AnswerValue:
    """One answer: a scalar (row and column "") or a table cell.

    Validation reads them from a workbook; the consolidation reads stored ones back, where
    ``carried_forward`` says the value repeats the state's previous accepted return (the intake
    decides that on storing, so a value fresh from a workbook leaves it False).
    """

    field_key: str
    row_key: str
    column_key: str
    value: Any
    carried_forward: bool = False


@dataclass(frozen=True)
class FormContext:
    """What validation needs besides the form: the cycle's period and catalogue lists."""

    form: FormSpec
    period_start: dt.date
    period_end: dt.date
    species: Sequence[tuple[str, dict[str, str], str]] = ()  # code, names, scientific name
    activities: Sequence[str] = ()  # activity codes
    today: dt.date = field(default_factory=dt.date.today)


@dataclass
class Validation:
    answers: list[AnswerValue] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == "error" for issue in self.issues)


class _Validator:
    def __init__(self, context: FormContext, messages: Messages) -> None:
        self.context = context
        self.messages = messages
        self.language = messages.language
        self.result = Validation()
        self._indexes: dict[str, dict[str, str]] = {}
        self.reading_table = False  # a cell of a table's row, not a scalar answer

    def issue(
        self,
        code: str,
        spec: FieldSpec | None,
        where: tuple[str, int, int] | None = None,
        *,
        field_key: str | None = None,
        **params: Any,
    ) -> None:
        sheet, cell = params.get("sheet"), None  # a whole sheet's issue names its tab
        if where:
            sheet, row, column = where
            cell = f"{get_column_letter(column)}{row}"
        label = spec.label(self.language) if spec else (field_key or "")
        location = self.place(where) if where else ""
        severity = "warning" if code in WARNING_CODES else "error"
        if spec is not None and code in NOT_A_NUMBER_CODES:
            severity = spec.not_a_number or self.context.form.not_a_number
            if severity == "warning":
                code = "not_counted_in_table" if self.reading_table else "not_counted"
        text = self.messages.issue(code, field=label, cell=location, **params)
        key = field_key or (spec.key if spec else None)
        self.result.issues.append(Issue(severity, code, text, key, sheet, cell))

    @staticmethod
    def place(where: tuple[str, int, int]) -> str:
        """A cell as a person finds it: B12 (3. Population)."""
        sheet, row, column = where
        return f"{get_column_letter(column)}{row} ({sheet})"

    def index(self, ref: str) -> dict[str, str]:
        if ref not in self._indexes:
            form = self.context.form
            if ref == "@species":
                entries = [
                    (code, [*names.values(), scientific])
                    for code, names, scientific in self.context.species
                ]
            else:
                entries = [
                    (c.value, [c.label.en, c.label.ru, c.label.fr]) for c in form.choices[ref]
                ]
            self._indexes[ref] = choice_index(entries)
        return self._indexes[ref]

    def allowed(self, ref: str) -> str:
        if ref == "@species":
            labels = [pick(names, self.language) for _, names, _ in self.context.species]
        else:
            labels = [c.label(self.language) for c in self.context.form.choices[ref]]
        return "; ".join(labels)

    def bound(self, value: Any, spec: FieldSpec) -> Any:
        if value == "period_start":
            value = self.context.period_start
        elif value == "period_end":
            value = self.context.period_end
        if spec.type == "year" and isinstance(value, dt.date):
            return value.year
        if spec.type == "date" and isinstance(value, int):
            return dt.date(value, 1, 1)
        return value

    def convert(self, spec: FieldSpec, raw: Any, where: tuple[str, int, int]) -> Any:
        """The typed value of one cell, or None after recording why it cannot be read."""
        shown = to_text(raw)[:60]
        try:
            if spec.type == "integer":
                value: Any = to_integer(raw)
            elif spec.type == "decimal":
                value = to_decimal(raw, self.language)
            elif spec.type == "year":
                value = to_year(raw)
            elif spec.type == "date":
                value = to_date(raw)
            elif spec.type == "boolean":
                value = to_boolean(raw)
            elif spec.type == "choice":
                value = to_choice(raw, self.index(spec.choices or ""))
            elif spec.type == "multi_choice":
                value = to_choices(raw, self.index(spec.choices or ""))
            elif spec.format == "email":
                value = to_email(raw)
            else:
                value = to_text(raw)
        except Unreadable as problem:
            extra = {"allowed": self.allowed(spec.choices or "")} if spec.choices else {}
            self.issue(problem.code, spec, where, value=shown, **problem.params, **extra)
            return None
        return self.check_limits(spec, value, where)

    def check_limits(self, spec: FieldSpec, value: Any, where: tuple[str, int, int]) -> Any:
        if spec.type == "text" and spec.max_length:
            # A translation the state adds after "[en]" is not counted against the original:
            # the limit holds for the text and for each translation of it.
            original, given = translations_in(value)
            length = max([len(original), *(len(t) for t in given.values())])
            if length > spec.max_length:
                self.issue("too_long", spec, where, length=length, limit=spec.max_length)
                return None
        if spec.type in ("integer", "decimal", "year", "date"):
            low, high = self.bound(spec.min, spec), self.bound(spec.max, spec)
            if low is not None and value < low:
                self.issue("below_min", spec, where, value=_show(value), limit=_show(low))
                return None
            if high is not None and value > high:
                self.issue("above_max", spec, where, value=_show(value), limit=_show(high))
                return None
            if spec.type == "date" and value > self.context.today:
                self.issue("future_date", spec, where, value=_show(value))
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    def cell_value(
        self, spec: FieldSpec, raw: Any, where: tuple[str, int, int], formulas: set
    ) -> tuple[bool, Any]:
        """(filled, value): a blank cell is not filled; an unreadable one is filled, None."""
        if is_blank(raw):
            if where in formulas:
                self.issue("formula_without_value", spec, where)
                return True, None
            return False, None
        return True, self.convert(spec, raw, where)

    # -- fields --------------------------------------------------------------------------
    def scalar(self, spec: FieldSpec, named: NamedRange, formulas: set) -> None:
        raw = named.rows[0][0] if named.rows and named.rows[0] else None
        where = (named.sheet, named.min_row, named.min_col)
        filled, value = self.cell_value(spec, raw, where, formulas)
        if not filled:
            if spec.required:
                self.issue("required", spec, where)
            return
        if value is not None:
            self.result.answers.append(AnswerValue(spec.key, "", "", value))

    def table(self, spec: FieldSpec, named: NamedRange, formulas: set) -> None:
        self.reading_table = True
        try:
            self.table_rows(spec, named, formulas)
        finally:
            self.reading_table = False

    def table_rows(self, spec: FieldSpec, named: NamedRange, formulas: set) -> None:
        keyed = bool(spec.row_source)
        offset = ROW_KEY_COLUMNS if keyed else 0
        valid_keys = self.row_keys(spec) if keyed else set()
        first_seen: dict[str, str] = {}  # row key -> where its row is (a keyed row counts once)
        filled_rows = 0
        for index, row in enumerate(named.rows):
            row_number = named.min_row + index
            cells = list(row) + [None] * (offset + len(spec.columns) - len(row))
            inputs = cells[offset : offset + len(spec.columns)]
            if all(is_blank(v) for v in inputs):
                continue
            if keyed:
                row_key = self.row_key(spec, cells[0], index)
                where = (named.sheet, row_number, named.min_col)
                if row_key not in valid_keys:
                    self.issue("unknown_row", spec, where, value=to_text(cells[0] or "")[:20])
                    continue
                if row_key in first_seen:
                    # A copied row: two answers for one activity or threat cannot both count.
                    code = to_text(cells[0] or "")[:20]
                    self.issue("duplicate_row", spec, where, value=code, first=first_seen[row_key])
                    continue
                first_seen[row_key] = self.place(where)
            else:
                filled_rows += 1
                row_key = str(filled_rows)
            for position, column in enumerate(spec.columns):
                where = (named.sheet, row_number, named.min_col + offset + position)
                filled, value = self.cell_value(column, inputs[position], where, formulas)
                if not filled:
                    if column.required:
                        self.issue("row_incomplete", column, where, field_key=spec.key)
                    continue
                if value is not None:
                    self.result.answers.append(AnswerValue(spec.key, row_key, column.key, value))
            if keyed:
                filled_rows += 1
        if spec.required and filled_rows == 0:
            required = [c for c in spec.columns if c.required]
            if keyed and required:
                # The rows are printed: ask for what they lack, not for "a row".
                column = named.min_col + offset + spec.columns.index(required[0])
                letter = get_column_letter(column)
                cells = f"{letter}{named.min_row}:{letter}{named.min_row + len(named.rows) - 1}"
                self.issue(
                    "keyed_table_required",
                    required[0],
                    (named.sheet, named.min_row, column),
                    field_key=spec.key,
                    table=spec.label(self.language),
                    cells=f"{cells} ({named.sheet})",
                )
            else:
                self.issue("table_required", spec, (named.sheet, named.min_row, named.min_col))

    def row_keys(self, spec: FieldSpec) -> set[str]:
        if spec.row_source == "@activities":
            return set(self.context.activities)
        return {c.value for c in self.context.form.choices[spec.row_source or ""]}

    def row_key(self, spec: FieldSpec, code: Any, index: int) -> str:
        """The row's key from its code column: activity code, or the list position."""
        if spec.row_source == "@activities":
            return to_text(code or "")
        choices = self.context.form.choices[spec.row_source or ""]
        try:
            return choices[int(float(str(code))) - 1].value
        except (ValueError, IndexError):
            return f"?{to_text(code or '')}"


def validate(extraction: Extraction, context: FormContext, messages: Messages) -> Validation:
    """Typed answers and issues for an extracted workbook whose identity was accepted."""
    validator = _Validator(context, messages)
    for problem in extraction.warnings:
        validator.issue(problem.code, None, **problem.params)
    for spec in context.form.fields:
        if spec.key in extraction.oversized_names:
            cells = extraction.oversized_names[spec.key]
            validator.issue("range_too_large", spec, cells=cells)
            continue
        named = extraction.names.get(spec.key)
        if named is None:
            validator.issue("missing_name", spec)
            continue
        if spec.is_table:
            validator.table(spec, named, extraction.formula_cells)
        else:
            validator.scalar(spec, named, extraction.formula_cells)
    return validator.result


def _show(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    return str(value)
