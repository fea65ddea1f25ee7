"""Labels and order of what a form lists: choice values, table rows and fields, from the form
specification and the instrument's catalogue (activities, species)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.reference import activity_sort_key
from mou.forms.spec import FieldSpec, FormSpec
from mou.reporting.consolidation.model import Translated
from mou.store import models as m

# Row sources and choice lists filled from the catalogue rather than the form.
ACTIVITIES_SOURCE = "@activities"
SPECIES_SOURCE = "@species"


def sort_name(text: str) -> str:
    """A sort key that ignores case and accents ("Ouzbékistan" sorts with "Ouz...")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def translated(text: Any) -> dict[str, str]:
    """A form's translated text (a pydantic model) as {language: text}, empty ones left out."""
    return {k: v for k, v in text.model_dump().items() if v}


def field_order(form: FormSpec) -> dict[str, int]:
    """Field key -> position in the form."""
    return {f.key: i for i, f in enumerate(form.fields)}


def field_label(form: FormSpec, key: str | None) -> Translated | None:
    """The label of a field of the form, or None for no key or a key the form lacks."""
    if not key:
        return None
    try:
        return translated(form.field(key).label)
    except KeyError:
        return None


class Labels:
    """Labels of choice values and rows, from the form and the catalogue."""

    def __init__(
        self,
        form: FormSpec,
        activities: Sequence[m.Activity],
        species: Sequence[m.Species],
    ) -> None:
        self.form = form
        self.activities = {a.code: a for a in activities}
        self.activity_order = {a.code: a.position for a in activities}
        self.species = {s.code: dict(s.name) for s in species}

    def choices(self, name: str | None) -> dict[str, Translated]:
        """Value -> label of a choice list of the form, or of "@activities" / "@species"."""
        if not name:
            return {}
        if name == ACTIVITIES_SOURCE:
            return {code: dict(a.text) for code, a in self.activities.items()}
        if name == SPECIES_SOURCE:
            return dict(self.species)
        return {c.value: translated(c.label) for c in self.form.choices.get(name, ())}

    def choice(self, name: str | None, value: Any) -> Translated | None:
        """The label of one value of a choice list (None for a non-text or unknown value)."""
        if not isinstance(value, str):
            return None
        return self.choices(name).get(value)

    def row_order(self, spec: FieldSpec) -> dict[str, int]:
        """Row key -> position, for a table whose rows come from a list."""
        if spec.row_source == ACTIVITIES_SOURCE:
            return dict(self.activity_order)
        if spec.row_source:
            return {value: i for i, value in enumerate(self.choices(spec.row_source))}
        return {}

    def row_sort_key(self, spec: FieldSpec, row_key: str) -> tuple[int, Any]:
        """Listed rows in list order, then numbered rows, then activity codes, then the rest."""
        order = self.row_order(spec)
        if row_key in order:
            return (0, order[row_key])
        if row_key.isdigit():
            return (0, int(row_key))
        if spec.row_source == ACTIVITIES_SOURCE:
            try:
                return (1, activity_sort_key(row_key))
            except ValueError:
                pass
        return (2, row_key)

    def row_label(self, spec: FieldSpec, row_key: str) -> Translated | None:
        """The label of a listed row (None for the free rows of a table)."""
        if spec.row_source:
            return self.choice(spec.row_source, row_key)
        return None


def labels_for(session: Session, instrument: m.Instrument, form: FormSpec) -> Labels:
    """The labels of ``form`` with the instrument's activities (in programme order) and species."""
    activities = session.scalars(
        select(m.Activity)
        .where(m.Activity.instrument_id == instrument.id)
        .order_by(m.Activity.position)
    ).all()
    return Labels(form, activities, instrument.species)
