"""Build the Excel template a ministry fills: one sheet per section, locked labels, unlocked
inputs, dropdowns from a hidden sheet, defined names equal to field keys, signed identity."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from mou.i18n.formatting import Formatter
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
from mou.workbook.measure import DEFAULT_SIZE, FONT, TextMeasure

INPUT_FILL = PatternFill("solid", start_color="FFF2CC")  # pale yellow: fill me in
CARRIED_FILL = PatternFill("solid", start_color="DDEBF7")  # pale blue: carried forward
HEADER_FILL = PatternFill("solid", start_color="1F4E79")
THIN = Side(style="thin", color="A6A6A6")
BORDER = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
WRAP = Alignment(wrap_text=True, vertical="top")
UNLOCKED = Protection(locked=False)
NUMBER_FORMATS = {"integer": "0", "year": "0", "decimal": "0.00", "date": "DD.MM.YYYY"}
WIDTHS = {"text": 32, "integer": 14, "decimal": 14, "year": 12, "date": 14, "boolean": 12}
SCALAR_WIDTHS = {1: 46, 2: 40, 3: 24, 4: 48}  # label, input, expected entry, help
MULTILINE_INPUT_PT = 90.0  # room to type a paragraph in a multiline answer
TABLE_INPUT_PT = 45.0  # the same in a table row with a multiline column


def font(
    size: float = DEFAULT_SIZE,
    *,
    bold: bool = False,
    italic: bool = False,
    color: str | None = None,
) -> Font:
    """A cell font, always named (see ``measure.FONT``)."""
    return Font(name=FONT, size=size, bold=bold, italic=italic, color=color)


@dataclass(frozen=True)
class _Placed:
    """A text put in a sheet, kept to size its row once the column widths are known."""

    row: int
    first_column: int
    last_column: int
    text: str
    size: float
    bold: bool
    space_after: float = 0.0  # points below the text: paragraphs of instructions


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


def _sheet_title(index: int, section: Section, language: str) -> str:
    # The form specification checks on load that every tab fits Excel's 31 characters.
    return section.tab_title(index, language)


def _absolute(ws: Worksheet, first: str, last: str | None = None) -> str:
    def dollar(ref: str) -> str:
        match = re.match(r"([A-Z]+)(\d+)", ref)
        assert match
        return f"${match.group(1)}${match.group(2)}"

    ref = dollar(first) if last is None else f"{dollar(first)}:{dollar(last)}"
    return f"{quote_sheetname(ws.title)}!{ref}"


class _Builder:
    def __init__(self, context: TemplateContext, messages: Messages, fonts: Path) -> None:
        self.context = context
        self.measure = TextMeasure(fonts)
        self.placed: list[_Placed] = []
        self.floors: dict[int, float] = {}  # least heights of rows, by row
        self.form = context.form
        self.language = context.identity.language
        self.messages = messages
        self.wb = Workbook()
        # The Normal style's font is what blank cells show and what column widths count in.
        self.wb._named_styles["Normal"].font = font()
        self.wb._fonts[0] = font()
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
        prompt = _clip(self.hint(spec), 255)
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
        cell.font = font()
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
    def put(
        self,
        ws: Worksheet,
        row: int,
        column: int,
        text: Any,
        cell_font: Font,
        *,
        span: int = 1,
        space_after: float = 0.0,
    ) -> Any:
        """Write a text cell (wrapped, named font) and remember it for the row's height."""
        cell = ws.cell(row=row, column=column, value=text)
        cell.font = cell_font
        if cell.alignment is None or not cell.alignment.wrap_text:
            cell.alignment = WRAP
        if span > 1:
            ws.merge_cells(
                start_row=row, start_column=column, end_row=row, end_column=column + span - 1
            )
        if text is not None:
            self.placed.append(
                _Placed(
                    row,
                    column,
                    column + span - 1,
                    str(text),
                    float(cell_font.sz or DEFAULT_SIZE),
                    bool(cell_font.b),
                    space_after,
                )
            )
        return cell

    def fit_rows(self, ws: Worksheet, widths: dict[int, float]) -> None:
        """Give every row the height its texts need in their (final) column widths."""
        heights: dict[int, float] = dict(self.floors)
        for placed in self.placed:
            columns = sum(
                widths.get(c, 8.43) for c in range(placed.first_column, placed.last_column + 1)
            )
            needed = self.measure.height(placed.text, columns, placed.size, placed.bold)
            needed += placed.space_after
            heights[placed.row] = max(heights.get(placed.row, 0.0), needed)
        for row, height in heights.items():
            ws.row_dimensions[row].height = round(height, 1)
        self.placed, self.floors = [], {}

    def instructions(self) -> None:
        ws = self.wb.active
        ws.title = self.messages.ui("instructions_sheet")
        ui = self.messages.ui
        ctx = self.context
        widths = {1: 30.0, 2: 90.0}
        self.put(ws, 1, 1, self.form.title(self.language), self.title_font, span=2)
        facts = [
            (ui("instrument"), ctx.instrument_name),
            (ui("state"), ctx.state_name),
            (ui("period"), ctx.period),
            (ui("deadline"), Formatter(self.language).date(ctx.deadline)),
            (ui("form_version"), str(self.form.version)),
        ]
        for row, (label, value) in enumerate(facts, start=3):
            self.put(ws, row, 1, label, font(bold=True))
            self.put(ws, row, 2, value, font())
        row = len(facts) + 4
        for paragraph in self.form.instructions(self.language).split("\n\n"):
            self.put(ws, row, 1, paragraph.strip(), font(), span=2, space_after=6)
            row += 1
        row += 1
        self.put(ws, row, 1, ui("legend"), font(bold=True))
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
            self.put(ws, row, 2, text, font())
        for column, width in widths.items():
            ws.column_dimensions[get_column_letter(column)].width = width
        self.fit_rows(ws, widths)
        self.protect(ws)
        self.print_setup(ws, landscape=False)

    @property
    def title_font(self) -> Font:
        return font(14, bold=True, color="1F4E79")

    def section(self, index: int, section: Section) -> None:
        ws = self.wb.create_sheet(_sheet_title(index, section, self.language))
        widths: dict[int, float] = {}
        if any(not spec.is_table for spec in section.fields):
            widths.update(SCALAR_WIDTHS)
        span = max(4, max((self.table_width(s) for s in section.fields if s.is_table), default=0))
        self.put(ws, 1, 1, section.title(self.language), self.title_font, span=span)
        row = 2
        if section.help:
            self.put(ws, row, 1, section.help(self.language), font(), span=span)
            row += 1
        row += 1
        freeze: str | None = None
        for spec in section.fields:
            if spec.is_table:
                row, header_row = self.table(ws, spec, row, widths, span)
                if freeze is None and spec is section.fields[0]:
                    freeze = f"A{header_row + 1}"
                    ws.print_title_rows = f"{header_row}:{header_row}"
            else:
                row = self.scalar(ws, spec, row)
            row += 1
        for column, width in widths.items():
            ws.column_dimensions[get_column_letter(column)].width = width
        self.fit_rows(ws, widths)
        if freeze:
            ws.freeze_panes = freeze
        self.protect(ws)
        self.print_setup(ws, landscape=any(s.is_table for s in section.fields))

    @staticmethod
    def table_width(spec: FieldSpec) -> int:
        return len(spec.columns) + (2 if spec.row_source else 0)

    def scalar(self, ws: Worksheet, spec: FieldSpec, row: int) -> int:
        label = spec.label(self.language) + (" *" if spec.required else "")
        self.put(ws, row, 1, label, font(bold=spec.required))
        value = self.context.prefill.get(spec.key)
        self.input_cell(ws, row, 2, spec, value)
        if value is not None:
            self.put(ws, row, 2, ws.cell(row=row, column=2).value, font())
        self.put(ws, row, 3, self.hint(spec), font(9, italic=True, color="595959"))
        if spec.help:
            self.put(ws, row, 4, spec.help(self.language), font(9, color="404040"))
        if spec.multiline:
            self.floors[row] = MULTILINE_INPUT_PT
        target = ws.cell(row=row, column=2).coordinate
        self.name(spec.key, _absolute(ws, target))
        self.validation(ws, spec, target)
        return row + 1

    def table(
        self, ws: Worksheet, spec: FieldSpec, row: int, widths: dict[int, float], span: int
    ) -> tuple[int, int]:
        ui = self.messages.ui
        label_font = font(12, bold=True, color="1F4E79")
        self.put(ws, row, 1, spec.label(self.language), label_font, span=span)
        row += 1
        if spec.help:
            self.put(ws, row, 1, spec.help(self.language), font(), span=span)
            row += 1
        fixed_rows = (
            options(self.context, spec.row_source, self.language) if spec.row_source else []
        )
        activities = spec.row_source == "@activities"
        codes = [
            key if activities else str(position + 1) for position, (key, _) in enumerate(fixed_rows)
        ]
        headers: list[tuple[str, float]] = []
        if spec.row_source:
            # The code column holds its longest code (the header wraps above it).
            code_width = self.measure.columns_for([*codes, ui("code")], bold=True)
            headers += [(ui("code"), code_width)]
            headers += [(ui("item"), 60 if activities else 36)]
        for column in spec.columns:
            width = 50 if column.multiline else WIDTHS.get(column.type, 28)
            headers.append((column.label(self.language) + (" *" if column.required else ""), width))
        header_row = row
        for index, (text, width) in enumerate(headers, start=1):
            cell = ws.cell(row=row, column=index)
            cell.fill = HEADER_FILL
            cell.alignment = Alignment(wrap_text=True, vertical="center")
            cell.border = BORDER
            self.put(ws, row, index, text, font(bold=True, color="FFFFFF"))
            widths[index] = max(widths.get(index, 0), width)
        row += 1
        first_input = len(headers) - len(spec.columns) + 1
        prefilled = self.context.prefill.get(spec.key) or {}
        count = len(fixed_rows) if spec.row_source else (spec.rows or 1)
        first_row = row
        for position in range(count):
            if spec.row_source:
                key, label = fixed_rows[position]
                if activities:  # the list's "1.1.1 Strengthen ...": the code has its column
                    label = label.removeprefix(f"{key} ")
                for column, value in ((1, codes[position]), (2, label)):
                    ws.cell(row=row, column=column).border = BORDER
                    self.put(ws, row, column, value, font(9) if column == 2 else font(bold=True))
                values = prefilled.get(key, {})
            else:
                values = prefilled.get(str(position + 1), {})
            for offset, column in enumerate(spec.columns):
                place = first_input + offset
                self.input_cell(ws, row, place, column, values.get(column.key))
                if values.get(column.key) is not None:
                    self.put(ws, row, place, ws.cell(row=row, column=place).value, font())
            if any(c.multiline for c in spec.columns):
                self.floors[row] = TABLE_INPUT_PT
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


def _clip(text: str, limit: int) -> str:
    """``text`` cut to Excel's limit of a prompt at the end of a listed option, not mid-word."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 2]
    return cut[: cut.rfind("; ")] + "; …" if "; " in cut else cut.rsplit(" ", 1)[0] + " …"


def _fmt(value: Any) -> str:
    return f"{value:,}".replace(",", " ") if isinstance(value, int) else str(value)


def build_template(context: TemplateContext, settings: Settings) -> bytes:
    """The blank (or carried-forward) workbook for one state and cycle, as .xlsx bytes."""
    fonts = settings.templates_dir / "reports" / "fonts"
    builder = _Builder(context, Messages(settings.forms_dir, context.identity.language), fonts)
    builder.instructions()
    for index, section in enumerate(context.form.sections, start=1):
        builder.section(index, section)
    builder.meta(sign_identity(context.identity, settings.keyring))
    builder.wb.properties.title = context.form.title(context.identity.language)
    builder.wb.properties.creator = "CMS Secretariat reporting service"
    builder.wb.active = 0
    buffer = io.BytesIO()
    builder.wb.save(buffer)
    return buffer.getvalue()
