"""The official request letter (note verbale) from the CMS Secretariat to a ministry of foreign
affairs, with copy to the focal ministry or state committee (Res. 11.24, activity 2.5.3)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import yaml
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.documents.pdf import environment, gettext_of, html_to_pdf, reports_dir, w3c_moment
from mou.errors import Refused
from mou.forms.spec import load_form
from mou.i18n.languages import check_language, is_cyrillic, pick
from mou.settings import Settings
from mou.store import models as m


@dataclass(frozen=True)
class Addressee:
    """A ministry as it appears on the letter (name in the letter's language)."""

    name: str
    address: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class RequestLetter:
    """Everything the request letter says; texts already in ``language``."""

    language: str
    reference: str
    date: dt.date
    state_name: str
    addressee: Addressee  # the ministry of foreign affairs
    cc: tuple[Addressee, ...]  # focal ministries / state committees
    instrument_name: str
    instrument_short_name: str
    period: str
    period_start: dt.date
    period_end: dt.date
    deadline: dt.date
    form_title: str
    reply_to: str  # where the completed workbook goes
    secretariat: str
    enclosures: tuple[str, ...] = ()  # e.g. the template's file name; empty: a generic line
    place: str = ""  # empty: "Bonn" in the letter's language
    instrument_code: str = ""  # which paragraph says how often the instrument reports
    cycle_months: int = 24  # how often the Range States report (the catalogue's cycle)
    # The names as the sentences of the letter need them: in Russian the genitive
    # ("национальный отчет Республики Таджикистан о выполнении Меморандума ..."); empty: the
    # names above as they are.
    state_name_of: str = ""
    instrument_name_of: str = ""
    scientific_names: tuple[str, ...] = ()  # set in italics wherever they appear
    # An escalation note (after the deadline): the day of the request it recalls; ``date``
    # is then the note's own day, ``deadline`` the one the state was held to.
    recalls: dt.date | None = None


@lru_cache(maxsize=8)
def _names_in_sentences(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def names_in_sentences(settings: Settings, language: str) -> dict[str, dict[str, str]]:
    """``{"states": {code: name}, "instruments": {code: name}}`` as a language's letters put
    them in a sentence (``templates/reports/locale/<lang>/names.yaml``; none: as they are)."""
    return _names_in_sentences(reports_dir(settings) / "locale" / language / "names.yaml")


# A Latin binomial or trinomial in brackets, as instrument names give them: the MoU's
# "(Cervus elaphus bactrianus)" is not the catalogue's C. e. yarkandensis.
_BRACKETED_TAXON = re.compile(r"(?<=\()([A-Z][a-z]+ [a-z]+(?: [a-z]+)?)(?=\))")


def italic_names(text: str, names: tuple[str, ...] = ()) -> Markup:
    """``text``, escaped, with the scientific names in it set in italics (<em class=taxon>):
    those of ``names`` (the instrument's species) and any Latin name in brackets."""
    html = str(escape(text))
    patterns = [re.escape(str(escape(n))) for n in sorted(names, key=len, reverse=True)]
    patterns.append(_BRACKETED_TAXON.pattern)
    found = re.compile(r"(?<![\w>])(?:" + "|".join(patterns) + r")(?![\w<])")
    return Markup(found.sub(lambda match: f'<em class="taxon">{match[0]}</em>', html))


def address_in(authority: m.Authority, language: str) -> str | None:
    """The postal address a letter in ``language`` prints: the contact's address in that
    language, else its address if written in the letter's script (Cyrillic for Russian,
    Latin for English and French); else none (never a Latin address in a Russian letter)."""
    own = (authority.addresses or {}).get(language)
    if own:
        return str(own)
    address = authority.address
    if not address:
        return None
    cyrillic = is_cyrillic(address)
    return address if cyrillic == (language == "ru") else None


def _authority(authority: m.Authority, language: str, *, with_email: bool = False) -> Addressee:
    return Addressee(
        name=pick(authority.name, language),
        address=address_in(authority, language),
        email=authority.email if with_email else None,
    )


def request_letter_for(
    session: Session,
    request_id: int,
    settings: Settings,
    *,
    enclosures: tuple[str, ...] = (),
) -> RequestLetter:
    """The letter of one ReportRequest, from the catalogue's address book and the cycle."""
    request = session.get(m.ReportRequest, request_id)
    if request is None:
        raise Refused(f"report request {request_id} does not exist")
    language = check_language(request.language)
    cycle = request.cycle
    instrument = cycle.instrument
    ministries = ministries_of(session, request.state_id, instrument.code)
    if not ministries.foreign_affairs:
        raise Refused(
            f"no ministry of foreign affairs for {request.state.code} in the address book: "
            f"add one with `mou contacts add KEY --state {request.state.code} --kind "
            "foreign_affairs ...` (or enable it: `mou contacts list --state "
            f"{request.state.code}`)"
        )
    form = load_form(settings.forms_dir, instrument.code)
    created = request.created_at
    in_sentences = names_in_sentences(settings, language)
    species = session.scalars(
        select(m.Species.scientific_name)
        .join(m.InstrumentSpecies, m.InstrumentSpecies.species_id == m.Species.id)
        .where(m.InstrumentSpecies.instrument_id == instrument.id)
    ).all()
    return RequestLetter(
        language=language,
        reference=request.reference,
        date=(created.date() if created else cycle.opened_at.date()),
        state_name=pick(request.state.name, language),
        addressee=_authority(ministries.foreign_affairs[0], language),
        cc=tuple(_authority(a, language, with_email=True) for a in ministries.focal),
        instrument_name=pick(instrument.name, language),
        instrument_short_name=pick(instrument.short_name, language),
        period=cycle.period,
        period_start=cycle.period_start,
        period_end=cycle.period_end,
        deadline=cycle.deadline,
        form_title=form.title(language),
        reply_to=settings.mail_from,
        secretariat=pick(instrument.secretariat, language),
        enclosures=enclosures,
        instrument_code=instrument.code,
        cycle_months=instrument.cycle_months,
        state_name_of=in_sentences.get("states", {}).get(request.state.code, ""),
        instrument_name_of=in_sentences.get("instruments", {}).get(instrument.code, ""),
        scientific_names=tuple(species),
    )


def escalation_letter_for(
    session: Session,
    request_id: int,
    settings: Settings,
    *,
    today: dt.date,
    deadline: dt.date,
) -> RequestLetter:
    """The formal note to the ministry of foreign affairs once the deadline has passed with
    no report: it recalls the request (its reference and day) and asks for the report."""
    letter = request_letter_for(session, request_id, settings)
    return replace(letter, recalls=letter.date, date=today, deadline=deadline)


def _letter_html(letter: RequestLetter, settings: Settings, template: str, title: str) -> str:
    """A letter's HTML: ``template`` rendered with the names as its sentences need them;
    ``title``, in English, is translated for the document's title."""
    env = environment(settings, letter.language)
    subject = gettext_of(settings, letter.language)(title)
    moment = dt.datetime.combine(letter.date, dt.time(), tzinfo=dt.UTC)
    names = letter.scientific_names
    return env.get_template(template).render(
        letter=letter,
        state_of=letter.state_name_of or letter.state_name,
        instrument=italic_names(letter.instrument_name_of or letter.instrument_name, names),
        form_title=italic_names(letter.form_title, names),
        doc_title=f"{subject}: {letter.state_name}, {letter.period} ({letter.reference})",
        secretariat=letter.secretariat,
        created=w3c_moment(moment),
    )


def N_(text: str) -> str:  # gettext's name for a text marked, not translated
    return text  # extracted by Babel; _letter_html translates it


def escalation_letter_html(letter: RequestLetter, settings: Settings) -> str:
    return _letter_html(letter, settings, "escalation_letter.html", N_("National report overdue"))


def render_escalation_letter(letter: RequestLetter, settings: Settings) -> bytes:
    """The escalation note as a tagged PDF in the letter's language."""
    return html_to_pdf(escalation_letter_html(letter, settings), settings)


def request_letter_html(letter: RequestLetter, settings: Settings) -> str:
    return _letter_html(
        letter, settings, "request_letter.html", N_("Request for the national report")
    )


def render_request_letter(letter: RequestLetter, settings: Settings) -> bytes:
    """The request letter as a tagged PDF in the letter's language."""
    return html_to_pdf(request_letter_html(letter, settings), settings)
