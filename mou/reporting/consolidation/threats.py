"""Threat tables: for each table of the form with a severity column, the severity every state
gave each threat."""

from __future__ import annotations

from collections.abc import Sequence

from mou.forms.spec import FormSpec
from mou.reporting.consolidation.labels import Labels, translated
from mou.reporting.consolidation.model import StateReturn, ThreatLine, ThreatTable

# The choice list that marks a table's column as the threat's severity.
SEVERITY_CHOICES = "severity"


def threat_tables(
    returns: Sequence[StateReturn], form: FormSpec, labels: Labels
) -> tuple[ThreatTable, ...]:
    """One table per form table with a severity column and a row source, states in ``returns``
    order, threats in the order of their choice list."""
    tables = []
    for spec in form.fields:
        if not spec.is_table or not spec.row_source:
            continue
        severity = next((c for c in spec.columns if c.choices == SEVERITY_CHOICES), None)
        if severity is None:
            continue
        answers = {r.state.code: r.table(spec.key) for r in returns}
        lines = tuple(
            ThreatLine(
                value=value,
                label=label,
                severities={
                    code: (rows.get(value, {}).get(severity.key) or None)
                    for code, rows in answers.items()
                },
            )
            for value, label in labels.choices(spec.row_source).items()
        )
        tables.append(
            ThreatTable(
                field_key=spec.key,
                label=translated(spec.label),
                states=tuple(r.state for r in returns),
                severities=tuple(labels.choices(severity.choices).items()),
                lines=lines,
            )
        )
    return tuple(tables)
