"""Bring a database to the current schema and catalogue (``mou db upgrade``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from mou.catalogue.contact_edits import seed_contacts
from mou.catalogue.reference import load_catalogue, read_catalogue
from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope, upgrade


def prepare_database(settings: Settings) -> dict[str, Any]:
    """Migrate, load the catalogue and seed the contacts it lists (never overwriting one: see
    ``mou.catalogue.contacts``). Idempotent; returns the catalogue's counts, with the keys
    of contacts this run added, disabled (gone from the file) or enabled again."""
    catalogue = read_catalogue(settings.catalogue_dir)  # refuse a bad file before migrating
    upgrade(settings)
    try:
        with session_scope(settings) as session:
            load_catalogue(session, catalogue)
            seeded = seed_contacts(session, catalogue.authorities)
            return {
                "instruments": session.scalar(select(func.count(m.Instrument.id))) or 0,
                "states": session.scalar(select(func.count(m.RangeState.id))) or 0,
                "species": session.scalar(select(func.count(m.Species.id))) or 0,
                "activities": session.scalar(select(func.count(m.Activity.id))) or 0,
                "contacts": session.scalar(
                    select(func.count(m.Authority.id)).where(m.Authority.disabled_at.is_(None))
                )
                or 0,
                "contacts_added": seeded.added,
                "contacts_disabled": seeded.disabled,
                "contacts_enabled": seeded.enabled,
            }
    except OperationalError as exc:
        raise Refused(f"the database failed while loading the catalogue: {exc.orig}") from exc
