"""Proposals: the rows of tables with a ``proposal`` column, state by state."""

from __future__ import annotations

from collections.abc import Sequence

from mou.forms.spec import FieldSpec, FormSpec
from mou.reporting.consolidation.labels import Labels
from mou.reporting.consolidation.model import Proposal, StateReturn

# The column key that marks a table as holding proposals.
PROPOSAL_COLUMN = "proposal"


def proposal_fields(form: FormSpec) -> list[FieldSpec]:
    """The tables of the form that hold proposals."""
    return [
        f for f in form.fields if f.is_table and any(c.key == PROPOSAL_COLUMN for c in f.columns)
    ]


def proposals(
    returns: Sequence[StateReturn], form: FormSpec, labels: Labels
) -> tuple[Proposal, ...]:
    """Every proposal of the returns, state by state in ``returns`` order, rows in form order."""
    found = []
    for spec in proposal_fields(form):
        term = next((c for c in spec.columns if c.key == "term"), None)
        for returned in returns:
            rows = returned.table(spec.key)
            for row_key in sorted(rows, key=lambda r: labels.row_sort_key(spec, r)):
                row = rows[row_key]
                text = row.get(PROPOSAL_COLUMN)
                if not isinstance(text, str) or not text.strip():
                    continue
                value = row.get("term")
                found.append(
                    Proposal(
                        state=returned.state,
                        row=row_key,
                        text=text,
                        term=value if isinstance(value, str) else None,
                        term_label=labels.choice(term.choices if term else None, value),
                        rationale=row.get("rationale") or None,
                    )
                )
    return tuple(found)
