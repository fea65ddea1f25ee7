"""The focal points of a cycle's instrument, per species and per country, from the address
book as it stands (enabled contacts of kind focal_point)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mou.catalogue.contacts import list_contacts
from mou.reporting.consolidation.labels import sort_name
from mou.reporting.consolidation.model import FocalPoint, FocalPoints, SpeciesRef, StateRef
from mou.store import models as m


def focal_points(
    session: Session,
    instrument: m.Instrument,
    states: Mapping[str, StateRef],
    species: tuple[SpeciesRef, ...],
) -> FocalPoints | None:
    """Focal points for ``instrument`` in ``states`` (by code); None when the instrument has
    no programme of work (the activities that ask for focal points are in CAMI's)."""
    has_programme = session.scalar(
        select(func.count(m.ProgrammeHeading.id)).where(
            m.ProgrammeHeading.instrument_id == instrument.id
        )
    )
    if not has_programme:
        return None
    points = [
        FocalPoint(
            state=states[c.state],
            species_code=c.species,
            name=dict(c.name),
            person=(c.person or {}).get("name") or None,
            email=c.email,
        )
        for c in list_contacts(
            session, kind="focal_point", instrument=instrument.code, enabled=True
        )
        if c.state in states
    ]
    points.sort(key=lambda p: (sort_name(p.state.label("en")), p.state.code, p.email))
    return FocalPoints(
        by_species=tuple(
            (s, tuple(p for p in points if p.species_code == s.code)) for s in species
        ),
        national=tuple(
            (state, tuple(p for p in points if p.species_code is None and p.state == state))
            for state in sorted(states.values(), key=lambda s: (sort_name(s.label("en")), s.code))
        ),
    )
