"""Data quality: the warnings accepted returns kept, and the answers carried forward unchanged
from each state's previous report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from mou.forms.spec import FormSpec
from mou.reporting.consolidation.labels import field_label, field_order
from mou.reporting.consolidation.model import CarriedForward, DataQuality, StateReturn


def data_quality(returns: Sequence[StateReturn], form: FormSpec) -> DataQuality:
    """The warnings of the counted returns, and per state and field the cells carried forward."""
    order = field_order(form)
    carried = []
    for returned in returns:
        cells: dict[str, int] = defaultdict(int)
        for answer in returned.answers:
            if answer.carried_forward:
                cells[answer.field_key] += 1
        for key in sorted(cells, key=lambda k: (order.get(k, len(order)), k)):
            carried.append(
                CarriedForward(
                    returned.state, key, field_label(form, key) or {"en": key}, cells[key]
                )
            )
    return DataQuality(
        warnings=tuple(w for r in returns for w in r.warnings),
        carried_forward=tuple(carried),
        reviewed=tuple(r for r in returns if r.review_reason),
    )
