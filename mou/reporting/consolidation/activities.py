"""Activity matrices: for each table of the form with an activity-status column, the status
every state gave each activity (or Action Plan theme), with counts by group and priority."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.reference import activity_sort_key
from mou.forms.spec import FieldSpec, FormSpec
from mou.reporting.consolidation.labels import ACTIVITIES_SOURCE, Labels, translated
from mou.reporting.consolidation.model import (
    ActivityGroup,
    ActivityLine,
    ActivityMatrix,
    StateReturn,
    StatusCounts,
    Translated,
)
from mou.store import models as m

# The choice list that marks a table's column as the activity status.
STATUS_CHOICES = "activity_status"
# Priority levels of the programmes, most urgent first (unknown levels sort last).
PRIORITY_ORDER = {
    "high": 0,
    "high_medium": 1,
    "medium": 2,
    "medium_low": 3,
    "low": 4,
    "mixed": 5,
    "conditional": 6,
}


def status_counts(cells: Iterable[str | None], statuses: Sequence[str]) -> StatusCounts:
    """Counts of each status among ``cells`` (None: left empty), every status listed."""
    by_status = dict.fromkeys(statuses, 0)
    missing = 0
    for value in cells:
        if value is None:
            missing += 1
        else:
            by_status[value] = by_status.get(value, 0) + 1
    return StatusCounts(by_status=by_status, not_reported=missing)


def status_column(spec: FieldSpec) -> FieldSpec | None:
    """The activity-status column of a table, if it has one."""
    for column in spec.columns:
        if column.type == "choice" and column.choices == STATUS_CHOICES:
            return column
    return None


def activity_matrices(
    session: Session,
    instrument: m.Instrument,
    returns: Sequence[StateReturn],
    form: FormSpec,
    labels: Labels,
) -> tuple[ActivityMatrix, ...]:
    """One matrix per table with a status column and a row source, states in ``returns``
    order; activity rows are grouped by objective, theme rows form one group."""
    headings = {
        h.code: h
        for h in session.scalars(
            select(m.ProgrammeHeading).where(m.ProgrammeHeading.instrument_id == instrument.id)
        )
    }
    matrices = []
    for spec in form.fields:
        column = status_column(spec) if spec.is_table else None
        if column is None or not spec.row_source:
            continue
        status_values = list(labels.choices(column.choices))
        tables = {r.state.code: r.table(spec.key) for r in returns}

        def line_statuses(
            row_key: str, tables: dict[str, Any] = tables, key: str = column.key
        ) -> dict[str, Any]:
            return {
                code: (table.get(row_key, {}).get(key) or None) for code, table in tables.items()
            }

        grouped: dict[str, list[ActivityLine]] = {}
        titles: dict[str, Translated] = {}
        if spec.row_source == ACTIVITIES_SOURCE:
            for code, activity in labels.activities.items():
                statuses = line_statuses(code)
                issue = headings.get(activity.issue_code)
                grouped.setdefault(activity.objective_code, []).append(
                    ActivityLine(
                        code=code,
                        label=dict(activity.text),
                        issue_code=activity.issue_code,
                        issue_title=dict(issue.title) if issue else None,
                        subheading=dict(activity.subheading) if activity.subheading else None,
                        priority=activity.priority_level,
                        priority_source=activity.priority_source,
                        statuses=statuses,
                        counts=status_counts(statuses.values(), status_values),
                    )
                )
            for code in grouped:
                heading = headings.get(code)
                titles[code] = dict(heading.title) if heading else {"en": code}
        else:
            # A choice-list row source (Bukhara Deer MoU: Action Plan themes): one group.
            for value, label in labels.choices(spec.row_source).items():
                statuses = line_statuses(value)
                grouped.setdefault(spec.key, []).append(
                    ActivityLine(
                        code=value,
                        label=label,
                        issue_code=None,
                        issue_title=None,
                        subheading=None,
                        priority=None,
                        priority_source=None,
                        statuses=statuses,
                        counts=status_counts(statuses.values(), status_values),
                    )
                )
            titles[spec.key] = translated(spec.label)

        def group_key(code: str) -> tuple[Any, ...]:
            try:
                return (0, activity_sort_key(code))
            except ValueError:
                return (1, code)

        groups = []
        for code in sorted(grouped, key=group_key):
            lines = grouped[code]
            cells = [v for line in lines for v in line.statuses.values()]
            groups.append(
                ActivityGroup(
                    code=code,
                    title=titles[code],
                    lines=tuple(lines),
                    counts=status_counts(cells, status_values),
                )
            )
        priorities: dict[str, list[str | None]] = {}
        for group in groups:
            for line in group.lines:
                if line.priority:
                    priorities.setdefault(line.priority, []).extend(line.statuses.values())
        all_cells = [v for g in groups for line in g.lines for v in line.statuses.values()]
        matrices.append(
            ActivityMatrix(
                field_key=spec.key,
                label=translated(spec.label),
                states=tuple(r.state for r in returns),
                statuses=tuple(labels.choices(column.choices).items()),
                groups=tuple(groups),
                by_priority=tuple(
                    (level, status_counts(cells, status_values))
                    for level, cells in sorted(
                        priorities.items(), key=lambda item: PRIORITY_ORDER.get(item[0], 99)
                    )
                ),
                total=status_counts(all_cells, status_values),
            )
        )
    return tuple(matrices)
