"""Build the Excel template a ministry fills: one sheet per section, locked labels, unlocked
inputs, dropdowns from a hidden sheet, defined names equal to field keys, signed identity."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from mou.forms.spec import FieldSpec, FormSpec, Section
from mou.i18n.languages import pick
from mou.i18n.texts import Messages
from mou.settings import Settings
from mou.workbook.identity import TemplateIdentity, sign_identity
from mou.workbook.layout import (
    IDENTITY_NAME,
    IDENTITY_PROPERTY,
    LIST_NAME_PREFIX,
    LISTS_SHEET,
    META_SHEET,
)

INPUT_FILL = PatternFill("solid", start_color="FFF2CC")  # pale yellow: fill me in
CARRIED_FILL = PatternFill("solid", start_color="DDEBF7")  # pale blue: carried forward
HEADER_FILL = PatternFill("solid", start_color="1F4E79")
THIN = Side(style="thin", color="A6A6A6")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
UNLOCKED = Protection(locked=False)
NUMBER_FORMATS = {"integer": "0", "year": "0", "decimal": "0.00", "date": "DD.MM.YYYY"}
WIDTHS = {"text": 32, "integer": 14, "decimal": 14, "year": 12, "date": 14, "boolean": 12}


@dataclass(frozen=True)
class TemplateContext:
    """Everything a template needs beyond the form: who it is for and catalogue lists."""

    form: FormSpec
    identity: TemplateIdentity
    instrument_name: str
    state_name: str
    period: str
    period_start: dt.date
    period_end: dt.date
    deadline: dt.date
    species: Sequence[tuple[str, dict[str, str]]] = ()
    activities: Sequence[tuple[str, dict[str, str]]] = ()
    # Previous accepted answers for carry-forward fields: scalars by key; tables by key then
    # row key then column key.
    prefill: dict[str, Any] = field(default_factory=dict)
    prefill_period: str | None = None


def options(context: TemplateContext, ref: str, language: str) -> list[tuple[str, str]]:
    """(value, label) pairs of a choice list or a catalogue list (``@species``)."""
    if ref == "@species":
        return [(code, pick(names, language)) for code, names in context.species]
    if ref == "@activities":
        return [(code, f"{code} {pick(names, language)}") for code, names in context.activities]
    return [(c.value, c.label(language)) for c in context.form.choices[ref]]


def _sheet_title(index: int, title: str, used: set[str]) -> str:
    clean = re.sub(r"[\[\]:*?/\\']", " ", title).strip()
    candidate = f"{index}. {clean}"[:31].rstrip()
    while candidate in used:
        candidate = candidate[:28] + f"~{len(used)}"
    used.add(candidate)
    return candidate


def _absolute(ws: Worksheet, first: str, last: str | None = None) -> str:
    def dollar(ref: str) -> str:
        match = re.match(r"([A-Z]+)(\d+)", ref)
        assert match
        return f"${match.group(1)}${match.group(2)}"

    ref = dollar(first) if last is None else f"{dollar(first)}:{dollar(last)}"
    return f"{quote_sheetname(ws.title)}!{ref}"


class _Builder:
    def __init__(self, context: TemplateContext, messages: Messages) -> None:
        self.context = context
        self.form = context.form
        self.language = context.identity.language
        self.messages = messages
        self.wb = Workbook()
        self.lists_ws: Worksheet | None = None
        self.list_refs: dict[str, str] = {}
        self.validations: dict[str, list[DataValidation]] = {}

    # -- shared pieces -------------------------------------------------------------------
    def list_ref(self, ref: str) -> str:
        """Cell range on the hidden lists sheet holding the labels of a choice list."""
        if ref in self.list_refs:
            return self.list_refs[ref]
        if self.lists_ws is None:
            self.lists_ws = self.wb.create_sheet(LISTS_SHEET)
            self.lists_ws.sheet_state = "hidden"
        ws = self.lists_ws
        column = len(self.list_refs) + 1
        letter = get_column_letter(column)
        labels = [label for _, label in options(self.context, ref, self.language)]
        ws.cell(row=1, column=column, value=ref)
        for row, label in enumerate(labels, start=2):
            ws.cell(row=row, column=column, value=label)
        target = _absolute(ws, f"{letter}2", f"{letter}{len(labels) + 1}")
        name = LIST_NAME_PREFIX + ref.lstrip("@")
        self.wb.defined_names[name] = DefinedName(name, attr_text=target)
        self.list_refs[ref] = target
        return target

    def hint(self, spec: FieldSpec) -> str:
        ui = self.messages.ui
        if spec.format == "email":
            return ui("hint_email")
        if spec.type == "text":
            return ui("hint_multiline") if spec.multiline else ui("hint_text")
        if spec.type in ("integer", "decimal"):
            text = ui(f"hint_{spec.type}")
            low, high = self.bound(spec.min), self.bound(spec.max)
            if low is not None and high is not None:
                text += ", " + ui("hint_range", min=_fmt(low), max=_fmt(high))
            return text
        if spec.type == "multi_choice":
            labels = [
                label for _, label in options(self.context, spec.choices or "", self.language)
            ]
            return ui("hint_multi_choice") + ": " + "; ".join(labels)
        return ui(f"hint_{spec.type}")

    def bound(self, value: Any) -> Any:
        if value == "period_start":
            return self.context.period_start.year
        if value == "period_end":
            return self.context.period_end.year
        return value

    def validation(self, ws: Worksheet, spec: FieldSpec, cells: str) -> None:
        """Dropdowns and range checks; the reader checks again, this only helps the typist."""
        title = spec.label(self.language)[:32]
        prompt = self.hint(spec)[:255]
        dv: DataValidation | None = None
        if spec.type in ("choice",):
            dv = DataValidation(type="list", formula1="=" + self.list_ref(spec.choices or ""))
        elif spec.type == "boolean":
            yes, no = self.messages.ui("yes"), self.messages.ui("no")
            dv = DataValidation(type="list", formula1=f'"{yes},{no}"')
        elif spec.type in ("integer", "year", "decimal"):
            low, high = self.bound(spec.min), self.bound(spec.max)
            if low is not None and high is not None:
                kind = "decimal" if spec.type == "decimal" else "whole"
                dv = DataValidation(
                    type=kind, operator="between", formula1=str(low), formula2=str(high)
                )
        if dv is None:
            dv = DataValidation(type=None)
        dv.allow_blank = True
        dv.showInputMessage = True
        dv.promptTitle = title
        dv.prompt = prompt
        dv.showErrorMessage = dv.type is not None
        dv.errorStyle = "warning"  # a warning lets an officer keep a value and explain it
        dv.errorTitle = self.messages.ui("invalid_entry")[:32]
        dv.error = prompt
        dv.add(cells)
        ws.add_data_validation(dv)

    def input_cell(self, ws: Worksheet, row: int, column: int, spec: FieldSpec, value: Any) -> None:
        cell = ws.cell(row=row, column=column)
        cell.protection = UNLOCKED
        cell.border = BORDER
        cell.alignment = WRAP
        cell.fill = INPUT_FILL
        if spec.type in NUMBER_FORMATS:
            cell.number_format = NUMBER_FORMATS[spec.type]
        elif spec.type in ("text", "choice", "multi_choice"):
            cell.number_format = "@"
        if value is not None:
            cell.value = self.display_value(spec, value)
            cell.fill = CARRIED_FILL
            period = self.context.prefill_period or ""
            cell.comment = Comment(self.messages.ui("carried_comment", period=period), "CMS")

    def display_value(self, spec: FieldSpec, value: Any) -> Any:
        """A stored answer as the officer would type it in this language."""
        if spec.type == "date" and isinstance(value, str):
            return dt.date.fromisoformat(value)
        if spec.type == "boolean":
            return self.messages.ui("yes") if value else self.messages.ui("no")
        if spec.type in ("choice", "multi_choice"):
            labels = dict(options(self.context, spec.choices or "", self.language))
            values = value if isinstance(value, list) else [value]
            return "; ".join(labels.get(v, str(v)) for v in values)
        return value

    def name(self, key: str, target: str) -> None:
        self.wb.defined_names[key] = DefinedName(key, attr_text=target)

    # -- sheets --------------------------------------------------------------------------
    def instructions(self) -> None:
        ws = self.wb.active
        ws.title = self.messages.ui("instructions_sheet")
        ui = self.messages.ui
        ctx = self.context
        ws.column_dimensions["A"].width = 30
        ws.column_dimensions["B"].width = 90
        ws["A1"] = self.form.title(self.language)
        ws["A1"].font = Font(bold=True, size=14, color="1F4E79")
        ws["A1"].alignment = WRAP
        ws.merge_cells("A1:B1")
        ws.row_dimensions[1].height = 40
        facts = [
            (ui("instrument"), ctx.instrument_name),
            (ui("state"), ctx.state_name),
            (ui("period"), ctx.period),
            (ui("deadline"), ctx.deadline.strftime("%d.%m.%Y")),
            (ui("form_version"), str(self.form.version)),
        ]
        for row, (label, value) in enumerate(facts, start=3):
            ws.cell(row=row, column=1, value=label).font = Font(bold=True)
            ws.cell(row=row, column=2, value=value).alignment = WRAP
        row = len(facts) + 4
        for paragraph in self.form.instructions(self.language).split("\n\n"):
            cell = ws.cell(row=row, column=1, value=paragraph.strip())
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=2)
            cell.alignment = WRAP
            ws.row_dimensions[row].height = max(15, 15 * (len(paragraph) // 110 + 1))
            row += 1
        row += 1
        ws.cell(row=row, column=1, value=ui("legend")).font = Font(bold=True)
        for fill, text in (
            (INPUT_FILL, ui("legend_input")),
            (CARRIED_FILL, ui("legend_carried")),
            (None, ui("legend_required")),
        ):
            row += 1
            marker = ws.cell(row=row, column=1)
            if fill is not None:
                marker.fill = fill
                marker.border = BORDER
            ws.cell(row=row, column=2, value=text).alignment = WRAP
        self.protect(ws)
        self.print_setup(ws, landscape=False)

    def section(self, index: int, section: Section, used: set[str]) -> None:
        ws = self.wb.create_sheet(_sheet_title(index, section.title(self.language), used))
        widths: dict[int, float] = {1: 46, 2: 40, 3: 24, 4: 48}
        ws["A1"] = section.title(self.language)
        ws["A1"].font = Font(bold=True, size=14, color="1F4E79")
        row = 2
        if section.help:
            ws.cell(row=row, column=1, value=section.help(self.language)).alignment = WRAP
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=4)
            ws.row_dimensions[row].height = max(30, 15 * (len(section.help.en) // 150 + 1))
            row += 1
        row += 1
        freeze: str | None = None
        for spec in section.fields:
            if spec.is_table:
                row, header_row = self.table(ws, spec, row, widths)
                if freeze is None and spec is section.fields[0]:
                    freeze = f"A{header_row + 1}"
                    ws.print_title_rows = f"{header_row}:{header_row}"
            else:
                row = self.scalar(ws, spec, row)
            row += 1
        for column, width in widths.items():
            ws.column_dimensions[get_column_letter(column)].width = width
        if freeze:
            ws.freeze_panes = freeze
        self.protect(ws)
        self.print_setup(ws, landscape=any(s.is_table for s in section.fields))

    def scalar(self, ws: Worksheet, spec: FieldSpec, row: int) -> int:
        label = spec.label(self.language) + (" *" if spec.required else "")
        ws.cell(row=row, column=1, value=label).alignment = WRAP
        ws.cell(row=row, column=1).font = Font(bold=spec.required)
        self.input_cell(ws, row, 2, spec, self.context.prefill.get(spec.key))
        hint = ws.cell(row=row, column=3, value=self.hint(spec))
        hint.alignment = WRAP
        hint.font = Font(italic=True, color="595959", size=9)
        if spec.help:
            help_cell = ws.cell(row=row, column=4, value=spec.help(self.language))
            help_cell.alignment = WRAP
            help_cell.font = Font(size=9, color="404040")
        if spec.multiline:
            ws.row_dimensions[row].height = 90
        elif spec.help and len(spec.help.en) > 60:
            ws.row_dimensions[row].height = 15 * (len(spec.help.en) // 55 + 1)
        target = ws.cell(row=row, column=2).coordinate
        self.name(spec.key, _absolute(ws, target))
        self.validation(ws, spec, target)
        return row + 1

    def table(
        self, ws: Worksheet, spec: FieldSpec, row: int, widths: dict[int, float]
    ) -> tuple[int, int]:
        ui = self.messages.ui
        ws.cell(row=row, column=1, value=spec.label(self.language)).font = Font(
            bold=True, size=12, color="1F4E79"
        )
        row += 1
        if spec.help:
            ws.cell(row=row, column=1, value=spec.help(self.language)).alignment = WRAP
            ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=4)
            ws.row_dimensions[row].height = max(30, 15 * (len(spec.help.en) // 150 + 1))
            row += 1
        fixed_rows = (
            options(self.context, spec.row_source, self.language) if spec.row_source else []
        )
        headers: list[tuple[str, float]] = []
        if spec.row_source:
            headers += [(ui("code"), 9 if spec.row_source == "@activities" else 4)]
            headers += [(ui("item"), 60 if spec.row_source == "@activities" else 36)]
        for column in spec.columns:
            width = 50 if column.multiline else WIDTHS.get(column.type, 28)
            headers.append((column.label(self.language) + (" *" if column.required else ""), width))
        header_row = row
        for index, (text, width) in enumerate(headers, start=1):
            cell = ws.cell(row=row, column=index, value=text)
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = HEADER_FILL
            cell.alignment = Alignment(wrap_text=True, vertical="center")
            cell.border = BORDER
            widths[index] = max(widths.get(index, 0), width)
        ws.row_dimensions[row].height = 45
        row += 1
        first_input = len(headers) - len(spec.columns) + 1
        prefilled = self.context.prefill.get(spec.key) or {}
        count = len(fixed_rows) if spec.row_source else (spec.rows or 1)
        first_row = row
        for position in range(count):
            if spec.row_source:
                key, label = fixed_rows[position]
                code = key if spec.row_source == "@activities" else str(position + 1)
                for column, value in ((1, code), (2, label)):
                    cell = ws.cell(row=row, column=column, value=value)
                    cell.alignment = WRAP
                    cell.border = BORDER
                    cell.font = Font(size=9) if column == 2 else Font(bold=True)
                values = prefilled.get(key, {})
            else:
                values = prefilled.get(str(position + 1), {})
            for offset, column in enumerate(spec.columns):
                self.input_cell(ws, row, first_input + offset, column, values.get(column.key))
            if spec.row_source == "@activities":
                ws.row_dimensions[row].height = 60
            elif any(c.multiline for c in spec.columns):
                ws.row_dimensions[row].height = 45
            row += 1
        last_row = row - 1
        start_column = 1 if spec.row_source else first_input
        first = f"{get_column_letter(start_column)}{first_row}"
        last = f"{get_column_letter(len(headers))}{last_row}"
        self.name(spec.key, _absolute(ws, first, last))
        for offset, column in enumerate(spec.columns):
            letter = get_column_letter(first_input + offset)
            self.validation(ws, column, f"{letter}{first_row}:{letter}{last_row}")
        return row, header_row

    def meta(self, token: str) -> None:
        ws = self.wb.create_sheet(META_SHEET)
        ws.sheet_state = "veryHidden"
        identity = self.context.identity
        rows = [
            ("token", token),
            ("instrument", identity.instrument),
            ("form_version", identity.form_version),
            ("cycle_id", identity.cycle_id),
            ("state", identity.state),
            ("language", identity.language),
        ]
        for index, (key, value) in enumerate(rows, start=1):
            ws.cell(row=index, column=1, value=key)
            ws.cell(row=index, column=2, value=value)
        self.protect(ws)
        self.wb.defined_names[IDENTITY_NAME] = DefinedName(IDENTITY_NAME, attr_text=f'"{token}"')
        self.wb.custom_doc_props.append(StringProperty(name=IDENTITY_PROPERTY, value=token))

    @staticmethod
    def protect(ws: Worksheet) -> None:
        # Labels are locked; officers may still resize rows and columns.
        ws.protection.sheet = True
        ws.protection.formatColumns = False
        ws.protection.formatRows = False

    @staticmethod
    def print_setup(ws: Worksheet, landscape: bool) -> None:
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.orientation = "landscape" if landscape else "portrait"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = False


def _fmt(value: Any) -> str:
    return f"{value:,}".replace(",", " ") if isinstance(value, int) else str(value)


def build_template(context: TemplateContext, settings: Settings) -> bytes:
    """The blank (or carried-forward) workbook for one state and cycle, as .xlsx bytes."""
    builder = _Builder(context, Messages(settings.forms_dir, context.identity.language))
    builder.instructions()
    used = {builder.wb.active.title}
    for index, section in enumerate(context.form.sections, start=1):
        builder.section(index, section, used)
    builder.meta(sign_identity(context.identity, settings.keyring))
    builder.wb.properties.title = context.form.title(context.identity.language)
    builder.wb.properties.creator = "CMS Secretariat reporting service"
    builder.wb.active = 0
    buffer = io.BytesIO()
    builder.wb.save(buffer)
    return buffer.getvalue()
