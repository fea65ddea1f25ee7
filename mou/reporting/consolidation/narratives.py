"""Narratives: the free text of the returns (multiline text fields and table columns),
attributed to the state and the question it answers. Proposals have their own section."""

from __future__ import annotations

from collections.abc import Sequence

from mou.forms.spec import FormSpec
from mou.reporting.consolidation.labels import Labels, translated
from mou.reporting.consolidation.model import Narrative, StateReturn
from mou.reporting.consolidation.proposals import proposal_fields


def narratives(
    returns: Sequence[StateReturn], form: FormSpec, labels: Labels
) -> tuple[Narrative, ...]:
    """The free text of the returns in form order: a text field state by state; a table row
    by row, then column by column, then state by state."""
    proposal_keys = {f.key for f in proposal_fields(form)}
    found = []
    for spec in form.fields:
        if spec.key in proposal_keys:
            continue
        if spec.type == "text" and spec.multiline:
            for returned in returns:
                text = returned.value(spec.key)
                if isinstance(text, str) and text.strip():
                    found.append(
                        Narrative(
                            returned.state,
                            spec.key,
                            translated(spec.label),
                            "",
                            None,
                            "",
                            None,
                            text,
                        )
                    )
        elif spec.is_table:
            text_columns = [c for c in spec.columns if c.type == "text" and c.multiline]
            if not text_columns:
                continue
            # Row by row, then state by state: what each state says about the same activity
            # or threat stands together.
            tables = {r.state.code: r.table(spec.key) for r in returns}
            row_keys = sorted(
                {k for rows in tables.values() for k in rows},
                key=lambda r: labels.row_sort_key(spec, r),
            )
            for row_key in row_keys:
                for column in text_columns:
                    for returned in returns:
                        text = tables[returned.state.code].get(row_key, {}).get(column.key)
                        if isinstance(text, str) and text.strip():
                            found.append(
                                Narrative(
                                    returned.state,
                                    spec.key,
                                    translated(spec.label),
                                    row_key,
                                    labels.row_label(spec, row_key),
                                    column.key,
                                    translated(column.label),
                                    text,
                                )
                            )
    return tuple(found)
