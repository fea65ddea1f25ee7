"""Bring a database to the current schema and catalogue (``mou db upgrade``)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mou.catalogue.reference import load_catalogue, read_catalogue
from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope, upgrade


def prepare_database(settings: Settings) -> dict[str, int]:
    """Migrate, then load the catalogue. Idempotent; returns the catalogue's counts."""
    catalogue = read_catalogue(settings.catalogue_dir)  # refuse a bad file before migrating
    upgrade(settings)
    try:
        with session_scope(settings) as session:
            load_catalogue(session, catalogue)
            return {
                "instruments": session.scalar(select(func.count(m.Instrument.id))) or 0,
                "states": session.scalar(select(func.count(m.RangeState.id))) or 0,
                "species": session.scalar(select(func.count(m.Species.id))) or 0,
                "activities": session.scalar(select(func.count(m.Activity.id))) or 0,
            }
    except OperationalError as exc:
        raise Refused(f"the database failed while loading the catalogue: {exc.orig}") from exc
