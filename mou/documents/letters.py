"""The official request letter (note verbale) from the CMS Secretariat to a ministry of foreign
affairs, with copy to the focal ministry or state committee (Res. 11.24, activity 2.5.3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mou.catalogue.addressbook import ministries_of
from mou.documents.pdf import environment, gettext_of, html_to_pdf, w3c_moment
from mou.errors import Refused
from mou.forms.spec import load_form
from mou.i18n.languages import check_language, pick
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


def _authority(authority: m.Authority, language: str, *, with_email: bool = False) -> Addressee:
    return Addressee(
        name=pick(authority.name, language),
        address=authority.address,
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
    )


def request_letter_html(letter: RequestLetter, settings: Settings) -> str:
    env = environment(settings, letter.language)
    _ = gettext_of(settings, letter.language)
    subject = _("Request for the national report")
    moment = dt.datetime.combine(letter.date, dt.time(), tzinfo=dt.UTC)
    return env.get_template("request_letter.html").render(
        letter=letter,
        doc_title=f"{subject}: {letter.state_name}, {letter.period} ({letter.reference})",
        secretariat=letter.secretariat,
        created=w3c_moment(moment),
    )


def render_request_letter(letter: RequestLetter, settings: Settings) -> bytes:
    """The request letter as a tagged PDF in the letter's language."""
    return html_to_pdf(request_letter_html(letter, settings), settings)
