"""The reference catalogue: instruments, range states, authorities, species, programme of work.

The catalogue is data (``db/catalogue/*.yaml``), checked on load and upserted idempotently.
The authorities (contacts) are the exception: the file only seeds them, the Secretariat edits
them in the database (``mou.catalogue.contacts``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.addresses import mailbox_address
from mou.errors import Refused
from mou.store import models as m

Language = Literal["en", "ru", "fr"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TranslatedText(_Strict):
    en: str
    ru: str | None = None
    fr: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class StateEntry(_Strict):
    code: str
    iso3: str
    name: TranslatedText
    language: Language

    @field_validator("code")
    @classmethod
    def _alpha2(cls, value: str) -> str:
        if len(value) != 2 or not value.isalpha() or not value.isupper():
            raise ValueError("must be an ISO 3166-1 alpha-2 code such as KZ")
        return value


class SpeciesEntry(_Strict):
    code: str
    scientific_name: str
    name: TranslatedText
    cms_appendix: str | None = None
    cami_basis: str | None = None


class ParticipantEntry(_Strict):
    state: str
    role: Literal["signatory", "range_state"]
    signed: dt.date | None = None
    recognised: dt.date | None = None


class InstrumentEntry(_Strict):
    code: str
    name: TranslatedText
    short_name: TranslatedText
    secretariat: TranslatedText
    languages: list[Language]
    cycle_months: int
    first_request: dt.date | None = None  # start of the scheduled requests
    response_days: int = 90
    in_force: dt.date | None = None
    adopted: dt.date | None = None
    species: list[str]
    participants: list[ParticipantEntry]


class AuthorityEntry(_Strict):
    key: str
    state: str
    kind: Literal["foreign_affairs", "focal_ministry", "focal_point"]
    name: TranslatedText
    email: str
    language: Language
    address: str | None = None
    addresses: dict[Language, str] | None = None  # the address in a letter's language
    person: dict[str, Any] | None = None
    instruments: list[str] | None = None
    species: str | None = None  # a focal point for one species (CAMI programme of work 4.1.2)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        # The outbox's own check (mou.addresses), so a seeded address is one it can send to.
        return mailbox_address(value)

    @model_validator(mode="after")
    def _species_for_focal_points(self) -> AuthorityEntry:
        if self.species is not None and self.kind != "focal_point":
            raise ValueError(f"authority {self.key}: only a focal point is for a species")
        return self


class Priority(_Strict):
    level: Literal["high", "high_medium", "medium", "medium_low", "low", "mixed", "conditional"]
    source: str


class HeadingEntry(_Strict):
    code: str
    title: TranslatedText
    objective: str | None = None


class ActivityEntry(_Strict):
    code: str
    objective: str
    issue: str
    subheading: TranslatedText | None = None
    text: TranslatedText
    responsible: TranslatedText
    priority: Priority


class ProgrammeOfWork(_Strict):
    instrument: str
    source: str
    objectives: list[HeadingEntry]
    issues: list[HeadingEntry]
    activities: list[ActivityEntry]

    @model_validator(mode="after")
    def _consistent(self) -> ProgrammeOfWork:
        codes = [a.code for a in self.activities]
        if len(set(codes)) != len(codes):
            raise ValueError("activity codes are not unique")
        issues = {i.code: i.objective for i in self.issues}
        for activity in self.activities:
            if issues.get(activity.issue) != activity.objective:
                raise ValueError(f"activity {activity.code}: unknown issue {activity.issue}")
        return self


class Catalogue(_Strict):
    instruments: list[InstrumentEntry]
    states: list[StateEntry]
    species: list[SpeciesEntry]
    authorities: list[AuthorityEntry]
    programmes: list[ProgrammeOfWork]

    @model_validator(mode="after")
    def _references(self) -> Catalogue:
        states = {s.code for s in self.states}
        species = {s.code for s in self.species}
        instruments = {i.code for i in self.instruments}
        for instrument in self.instruments:
            for p in instrument.participants:
                if p.state not in states:
                    raise ValueError(f"instrument {instrument.code}: unknown state {p.state}")
            for code in instrument.species:
                if code not in species:
                    raise ValueError(f"instrument {instrument.code}: unknown species {code}")
        for authority in self.authorities:
            if authority.state not in states:
                raise ValueError(f"authority {authority.key}: unknown state {authority.state}")
            for code in authority.instruments or []:
                if code not in instruments:
                    raise ValueError(f"authority {authority.key}: unknown instrument {code}")
            if authority.species is not None and authority.species not in species:
                raise ValueError(f"authority {authority.key}: unknown species {authority.species}")
        keys = [a.key for a in self.authorities]
        if len(set(keys)) != len(keys):
            raise ValueError("authority keys are not unique")
        for programme in self.programmes:
            if programme.instrument not in instruments:
                raise ValueError(f"programme of work: unknown instrument {programme.instrument}")
        return self


def activity_sort_key(code: str) -> tuple[int, ...]:
    """1.1.2 < 1.1.10: codes compare by their numbers."""
    return tuple(int(part) for part in code.split("."))


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise Refused(f"catalogue file {path} is missing") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise Refused(f"catalogue file {path} is not valid YAML{line}: fix the file") from exc


def read_catalogue(directory: Path) -> Catalogue:
    """Read and check every catalogue file; a malformed file is a one-line refusal."""
    parts: dict[str, Any] = {}
    for name in ("instruments", "states", "species", "authorities"):
        data = _read_yaml(directory / f"{name}.yaml")
        if not isinstance(data, dict) or name not in data:
            raise Refused(f"catalogue file {directory / name}.yaml must hold a '{name}:' list")
        parts[name] = data[name]
    parts["programmes"] = [
        _read_yaml(path) for path in sorted(directory.glob("programme_of_work*.yaml"))
    ]
    try:
        return Catalogue.model_validate(parts)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(f"catalogue in {directory} is malformed at {where}: {first['msg']}") from exc


def _upsert(session: Session, model: type, key: dict[str, Any], values: dict[str, Any]) -> Any:
    row = session.scalars(select(model).filter_by(**key)).one_or_none()
    if row is None:
        row = model(**key, **values)
        session.add(row)
    else:
        for attr, value in values.items():
            if getattr(row, attr) != value:
                setattr(row, attr, value)
    return row


def load_catalogue(session: Session, catalogue: Catalogue) -> None:
    """Insert or update every catalogue row but the contacts (``contacts.seed_contacts`` seeds
    those); running it twice changes nothing."""
    states = {
        s.code: _upsert(
            session,
            m.RangeState,
            {"code": s.code},
            {"iso3": s.iso3, "name": s.name.as_dict(), "language": s.language},
        )
        for s in catalogue.states
    }
    species = {
        s.code: _upsert(
            session,
            m.Species,
            {"code": s.code},
            {
                "scientific_name": s.scientific_name,
                "name": s.name.as_dict(),
                "cms_appendix": s.cms_appendix,
                "cami_basis": s.cami_basis,
            },
        )
        for s in catalogue.species
    }
    session.flush()
    instruments: dict[str, m.Instrument] = {}
    for entry in catalogue.instruments:
        instrument = _upsert(
            session,
            m.Instrument,
            {"code": entry.code},
            {
                "name": entry.name.as_dict(),
                "short_name": entry.short_name.as_dict(),
                "secretariat": entry.secretariat.as_dict(),
                "languages": list(entry.languages),
                "cycle_months": entry.cycle_months,
                "in_force": entry.in_force or entry.adopted,
            },
        )
        session.flush()
        instruments[entry.code] = instrument
        for p in entry.participants:
            _upsert(
                session,
                m.Participation,
                {"instrument_id": instrument.id, "state_id": states[p.state].id},
                {"role": p.role, "signed": p.signed, "recognised": p.recognised},
            )
        for code in entry.species:
            _upsert(
                session,
                m.InstrumentSpecies,
                {"instrument_id": instrument.id, "species_id": species[code].id},
                {},
            )
    for programme in catalogue.programmes:
        instrument = instruments[programme.instrument]
        for o in programme.objectives:
            _upsert(
                session,
                m.ProgrammeHeading,
                {"instrument_id": instrument.id, "code": o.code},
                {"level": "objective", "parent_code": None, "title": o.title.as_dict()},
            )
        for i in programme.issues:
            _upsert(
                session,
                m.ProgrammeHeading,
                {"instrument_id": instrument.id, "code": i.code},
                {"level": "issue", "parent_code": i.objective, "title": i.title.as_dict()},
            )
        ordered = sorted(programme.activities, key=lambda a: activity_sort_key(a.code))
        for position, a in enumerate(ordered, start=1):
            _upsert(
                session,
                m.Activity,
                {"instrument_id": instrument.id, "code": a.code},
                {
                    "position": position,
                    "objective_code": a.objective,
                    "issue_code": a.issue,
                    "subheading": a.subheading.as_dict() if a.subheading else None,
                    "text": a.text.as_dict(),
                    "responsible": a.responsible.as_dict(),
                    "priority_level": a.priority.level,
                    "priority_source": a.priority.source,
                },
            )
    session.flush()


def describe(session: Session) -> dict[str, Any]:
    """The catalogue as plain data (what ``mou catalogue --json`` prints)."""
    instruments = session.scalars(select(m.Instrument).order_by(m.Instrument.id)).all()
    states = session.scalars(select(m.RangeState).order_by(m.RangeState.code)).all()
    species = session.scalars(select(m.Species).order_by(m.Species.id)).all()
    authorities = session.scalars(select(m.Authority).order_by(m.Authority.id)).all()
    activities = session.scalars(
        select(m.Activity).order_by(m.Activity.instrument_id, m.Activity.position)
    ).all()
    codes = {i.id: i.code for i in instruments}
    state_codes = {s.id: s.code for s in states}
    return {
        "instruments": [
            {
                "code": i.code,
                "name": i.name,
                "short_name": i.short_name,
                "languages": i.languages,
                "cycle_months": i.cycle_months,
                "in_force": i.in_force.isoformat() if i.in_force else None,
                "range_states": [p.state.code for p in i.participations],
                "signatories": [p.state.code for p in i.participations if p.role == "signatory"],
                "species": [s.code for s in i.species],
            }
            for i in instruments
        ],
        "range_states": [
            {"code": s.code, "iso3": s.iso3, "name": s.name, "language": s.language} for s in states
        ],
        "authorities": [
            {
                "key": a.key,
                "state": state_codes[a.state_id],
                "kind": a.kind,
                "name": a.name,
                "species": a.species_code,
                "email": a.email,
                "language": a.language,
                "enabled": a.disabled_at is None,
            }
            for a in authorities
        ],
        "species": [
            {
                "code": s.code,
                "scientific_name": s.scientific_name,
                "name": s.name,
                "cms_appendix": s.cms_appendix,
            }
            for s in species
        ],
        "activities": [
            {
                "instrument": codes[a.instrument_id],
                "code": a.code,
                "objective": a.objective_code,
                "issue": a.issue_code,
                "text": a.text,
                "priority": {"level": a.priority_level, "source": a.priority_source},
            }
            for a in activities
        ],
    }
