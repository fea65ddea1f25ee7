"""The contacts page of the dashboard: the address book per state (key, kind, species, name,
email, language of correspondence, enabled), each contact's history, and — for officers and
admins — a form per contact to change its email, its name in the page's language and its
language of correspondence, and buttons to disable or enable it. Each form calls
``mou.catalogue.contact_edits`` with the signed-in account as actor, so every change is in the
contact's history and the audit log under its name; a refusal is shown on the page and
changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mou.accounts.sessions import SignedIn
from mou.catalogue import contact_edits
from mou.catalogue.contacts import Change, as_change, changes_of, list_contacts
from mou.errors import Refused
from mou.i18n.languages import LANGUAGES, pick
from mou.portal.shared import Portal
from mou.portal.signin import officer, read_form, secretariat_router, viewer
from mou.store import models as m
from mou.store.database import session_scope

Viewer = Annotated[SignedIn, Depends(viewer)]
Officer = Annotated[SignedIn, Depends(officer)]
ContactKey = Annotated[str, Path(min_length=1, max_length=60)]
# What a change says it did (``?done=``), by the texts' keys: nothing from the URL is shown
# but one of these and a key that exists.
DONE = frozenset({"contact_changed", "contact_unchanged", "contact_disabled", "contact_enabled"})
PAGE = "/dashboard/contacts"


def router(portal: Portal) -> APIRouter:
    """/dashboard/contacts and its forms."""
    settings = portal.settings
    routes = secretariat_router()

    def page(
        request: Request,
        lang: str,
        signed: SignedIn,
        *,
        status: int = 200,
        problem: tuple[str, str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        with session_scope(settings) as session:
            contacts = list_contacts(session)
            states = {s.code: pick(s.name, lang) for s in session.scalars(select(m.RangeState))}
            history = _history(session)
        done = request.query_params.get("done")
        key = request.query_params.get("key", "")
        notice = None
        if done in DONE and any(c.key == key for c in contacts):
            notice = (done, key)
        by_state = [
            (code, states.get(code, code), list(group))
            for code, group in groupby(contacts, key=lambda c: c.state)
        ]
        return portal.render_dashboard(
            request,
            "contacts.html",
            lang,
            signed,
            status=status,
            by_state=by_state,
            history=history,
            correspondence_languages=LANGUAGES,
            can_edit=signed.actor.can("edit_contacts"),
            notice=notice,
            problem=problem,
            form=form or {},
        )

    def done(lang: str, what: str, key: str) -> Response:
        return RedirectResponse(f"{PAGE}?lang={lang}&done={what}&key={key}#contact-{key}", 303)

    async def act(
        request: Request,
        signed: SignedIn,
        key: str,
        change: Callable[[Any, dict[str, str]], contact_edits.Edit],
        what: str,
    ) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)

        def perform() -> contact_edits.Edit:
            with session_scope(settings) as session:
                return change(session, form)

        try:
            edit = await run_in_threadpool(perform)
        except Refused as exc:
            kept = {k: form.get(k, "") for k in ("email", "name", "language", "reason")}
            return page(request, lang, signed, status=400, problem=(key, str(exc)), form=kept)
        return done(lang, what if edit.changed else "contact_unchanged", edit.key)

    @routes.get(PAGE, include_in_schema=False)
    def contacts_page(request: Request, signed: Viewer) -> Response:
        return page(request, portal.lang_of(request), signed)

    @routes.post(PAGE + "/{key}", include_in_schema=False)
    async def change(request: Request, signed: Officer, key: ContactKey) -> Response:
        lang = portal.lang_of(request)

        def set_contact(session: Any, form: dict[str, str]) -> contact_edits.Edit:
            return contact_edits.set_contact(
                session,
                signed.actor,
                key,
                email=form.get("email", "").strip() or contact_edits.KEEP,
                names={lang: form["name"]} if "name" in form else None,
                language=form.get("language") or contact_edits.KEEP,
                reason=form.get("reason"),
            )

        return await act(request, signed, key, set_contact, "contact_changed")

    @routes.post(PAGE + "/{key}/disable", include_in_schema=False)
    async def disable(request: Request, signed: Officer, key: ContactKey) -> Response:
        def disable_contact(session: Any, form: dict[str, str]) -> contact_edits.Edit:
            return contact_edits.disable_contact(
                session, signed.actor, key, reason=form.get("reason")
            )

        return await act(request, signed, key, disable_contact, "contact_disabled")

    @routes.post(PAGE + "/{key}/enable", include_in_schema=False)
    async def enable(request: Request, signed: Officer, key: ContactKey) -> Response:
        def enable_contact(session: Any, form: dict[str, str]) -> contact_edits.Edit:
            return contact_edits.enable_contact(
                session, signed.actor, key, reason=form.get("reason")
            )

        return await act(request, signed, key, enable_contact, "contact_enabled")

    return routes


def _history(session: Any) -> dict[str, list[Change]]:
    """Every contact's changes, newest first, by key."""
    authorities = {a.id: a.key for a in session.scalars(select(m.Authority))}
    by_key: dict[str, list[Change]] = {}
    for authority_id, rows in changes_of(session, authorities).items():
        key = authorities[authority_id]
        by_key[key] = [as_change(key, row) for row in reversed(rows)]
    return by_key
