"""A return as read: the answers of one state laid out like its form, for the documents.

The views here feed the ``return_sections`` macro of ``templates/reports/macros.html``: the
annex of the progress summary and the per-state summary attached to the receipt. Values are
formatted for one language; labels come from the form specification and the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mou.documents.pdf import Gettext
from mou.forms.spec import FieldSpec, FormSpec
from mou.i18n.formatting import Formatter
from mou.i18n.languages import pick
from mou.reporting.columns import column_widths
from mou.reporting.consolidation import (
    ACTIVITIES_SOURCE,
    CycleInfo,
    StateReturn,
    status_column,
)


@dataclass
class Cell:
    """One answer as shown; ``carried``: carried forward unchanged, so it gets the mark."""

    text: str
    carried: bool = False
    multiline: bool = False


@dataclass
class ItemView:
    """A question outside any table and its answer."""

    label: str
    value: Cell
    kind: str = "item"


@dataclass
class TableView:
    """A table question: its columns and its filled rows (row label, then cells)."""

    label: str
    columns: list[str]
    row_header: str | None
    rows: list[tuple[str | None, list[Cell]]]
    note: str = ""
    kind: str = "table"
    # Width of each column in % (row header first, if any): the table has a fixed layout.
    widths: list[float] = field(default_factory=list)


@dataclass
class SectionView:
    """A section of the form with the questions to show from it."""

    title: str
    items: list[ItemView | TableView] = field(default_factory=list)


class _Values:
    """Formats stored answer values for one language, with labels from form and catalogue."""

    def __init__(self, form: FormSpec, cycle: CycleInfo, language: str, gettext: Gettext) -> None:
        self.form = form
        self.cycle = cycle
        self.language = language
        self.fmt = Formatter(language)
        self._ = gettext

    def choice_label(self, choices: str | None, value: Any) -> str:
        if choices and choices.startswith("@"):
            labels = self.cycle.catalogue_choices.get(choices, {})
            return pick(labels.get(value), self.language) or str(value)
        for choice in self.form.choices.get(choices or "", ()):
            if choice.value == value:
                return choice.label(self.language)
        return str(value)

    def row_label(self, spec: FieldSpec, row_key: str, with_text: bool) -> str:
        if spec.row_source == ACTIVITIES_SOURCE:
            if not with_text:
                return row_key
            text = pick(
                self.cycle.catalogue_choices.get(ACTIVITIES_SOURCE, {}).get(row_key), self.language
            )
            return f"{row_key} {text}".strip()
        if spec.row_source:
            return self.choice_label(spec.row_source, row_key)
        return row_key

    def format(self, spec: FieldSpec, value: Any, *, compact: bool = False) -> str:
        _ = self._
        if value is None or value == "" or value == []:
            return ""
        if spec.type == "boolean":
            return _("Yes") if value else _("No")
        if spec.type == "year":
            return str(value)
        if spec.type in ("integer", "decimal") and isinstance(value, int | float):
            return self.fmt.number(value)
        if spec.type == "date":
            return self.fmt.date(value, "medium" if compact else "long")  # never 01/12/2026
        if spec.type == "choice":
            return self.choice_label(spec.choices, value)
        if spec.type == "multi_choice":
            values = value if isinstance(value, list) else [value]
            return "; ".join(self.choice_label(spec.choices, v) for v in values)
        return str(value)


def return_sections(
    returned: StateReturn,
    form: FormSpec,
    language: str,
    gettext: Gettext,
    *,
    include_empty: bool,
    activity_text: bool,
    fonts: Path,
    status_details_only: bool = False,
) -> list[SectionView]:
    """The return laid out like the form: sections, questions, tables (only filled rows).

    ``fonts`` is the folder of the report's fonts, to measure texts for column widths.

    ``status_details_only`` keeps, in activity-status tables, only the rows that say more
    than the status (species, narrative): the statuses are in the matrix of the summary.
    """
    values = _Values(form, returned.cycle, language, gettext)
    _ = gettext
    answers = {(a.field_key, a.row_key, a.column_key): a for a in returned.answers}
    sections = []
    for section in form.sections:
        view = SectionView(section.title(language))
        for spec in section.fields:
            if not spec.is_table:
                answer = answers.get((spec.key, "", ""))
                text = values.format(spec, answer.value) if answer else ""
                if not text and not include_empty:
                    continue
                view.items.append(
                    ItemView(
                        spec.label(language),
                        Cell(
                            text or _("Not answered"),
                            carried=bool(answer and answer.carried_forward),
                            multiline=spec.multiline,
                        ),
                    )
                )
                continue
            rows = returned.table(spec.key)
            if not rows and not include_empty:
                continue
            order = sorted(rows, key=lambda r: _row_order(spec, r, returned.cycle, form))
            note = ""
            status = status_column(spec)
            if status_details_only and status is not None:
                order = [r for r in order if set(rows[r]) - {status.key}]
                note = _(
                    "Only rows with details beyond the status are shown here; the status of "
                    "every row is in the implementation matrix."
                )
                if not order:
                    continue
            table_rows = []
            for row_key in order:
                cells = []
                for column in spec.columns:
                    answer = answers.get((spec.key, row_key, column.key))
                    cells.append(
                        Cell(
                            values.format(column, answer.value, compact=True) if answer else "",
                            carried=bool(answer and answer.carried_forward),
                            multiline=column.multiline,
                        )
                    )
                label = values.row_label(spec, row_key, activity_text) if spec.row_source else None
                table_rows.append((label, cells))
            row_header = None
            if spec.row_source == ACTIVITIES_SOURCE:
                row_header = _("Activity")
            elif spec.row_source:
                row_header = ""
            columns = [c.label(language) for c in spec.columns]
            view.items.append(
                TableView(
                    spec.label(language),
                    columns,
                    row_header,
                    table_rows,
                    note,
                    widths=column_widths(
                        ([] if row_header is None else [row_header]) + columns,
                        [
                            ([] if row_header is None else [Cell(label or "")]) + cells
                            for label, cells in table_rows
                        ],
                        fonts,
                        _("carried forward"),
                    ),
                )
            )
        if view.items:
            sections.append(view)
    return sections


def _row_order(spec: FieldSpec, row_key: str, cycle: CycleInfo, form: FormSpec) -> tuple[int, Any]:
    if spec.row_source:
        if spec.row_source.startswith("@"):
            keys = list(cycle.catalogue_choices.get(spec.row_source, {}))
        else:
            keys = [c.value for c in form.choices.get(spec.row_source, ())]
        return (0, keys.index(row_key)) if row_key in keys else (1, row_key)
    return (0, int(row_key)) if row_key.isdigit() else (1, row_key)
