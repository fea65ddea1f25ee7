"""The Secretariat's cycle actions on the dashboard: extend (cycle or state), excuse and undo,
send the request again, accept a return (an admin: despite named errors), send one back for
correction with comments per field, close, publish and withdraw.

Each is a form posted (CSRF token of the session, ``signin.read_form``) to a route of
``signin.secretariat_router`` (readers get 403 before the form is read). A first post shows a
confirmation page repeating what will be done; its button posts the same fields again with
``confirm=yes``, and only then the core action runs (``mou.secretariat`` through
``mou.service.actions.perform``, which checks the role again, commits, logs and sends the
emails). The answer is a redirect to the cycle page (post/redirect/get) carrying a notice of
what was done, in the page's language, in a signed cookie read once; a refusal
(``Refused``) is such a notice too, never a traceback.

The reports an action made stale are rendered in a background thread (``ReportRenders``), so a
click does not wait for WeasyPrint; the sweep renders them anyway if this process dies first.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mou.accounts.roles import NotAllowed
from mou.accounts.sessions import SignedIn
from mou.errors import Refused
from mou.i18n.languages import IN_LANGUAGE, LANGUAGES, pick
from mou.keyring import derive_key
from mou.portal import pages
from mou.portal.shared import MAX_ID, Portal, PortalError
from mou.portal.signin import officer, read_form, secretariat_router
from mou.secretariat.cycles import (
    MEETING_FIELDS,
    MEETING_TRANSLATED,
    close_cycle,
    excuse_state,
    extend_deadline,
    resend_request,
    set_meeting,
)
from mou.secretariat.publication import KINDS, is_released, publish
from mou.secretariat.results import ActionResult
from mou.secretariat.review import accept_return, return_for_correction
from mou.service.actions import perform
from mou.service.protocol import consolidate_and_render, render_national_reports
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope

log = logging.getLogger(__name__)

Officer = Annotated[SignedIn, Depends(officer)]
CycleId = Annotated[int, Path(ge=1, le=MAX_ID)]
NOTICE_COOKIE = "mou_notice"
NOTICE_PURPOSE = "dashboard-notice"
COMMENT_ROWS = 6  # comment rows of the review form
MAX_NOTICE = 500  # characters of a message kept in the notice cookie (Cyrillic, base64: < 4 KB)


# --- Reports rendered after an action, in the background ------------------------------


class ReportRenders:
    """Renders a cycle's reports in one background thread; a cycle already waiting for its
    render is not queued twice. ``enabled=False`` leaves them to the sweep (tests)."""

    def __init__(self, settings: Settings, enabled: bool = True) -> None:
        self.settings = settings
        self.enabled = enabled
        self._waiting: set[int] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mou-render")

    def submit(self, cycle_id: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if cycle_id in self._waiting:
                return
            self._waiting.add(cycle_id)
        self._pool.submit(self._render, cycle_id)

    def _render(self, cycle_id: int) -> None:
        with self._lock:  # a change made while this render runs queues another
            self._waiting.discard(cycle_id)
        try:
            consolidate_and_render(self.settings, cycle_id)
            with session_scope(self.settings) as session:
                national = is_released(session, cycle_id, "national-reports")
            if national:
                render_national_reports(self.settings, cycle_id)
        except Exception:  # the reports stay stale: the sweep renders them
            log.exception("reports of cycle %s not rendered after an action", cycle_id)

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every render queued so far has finished (one worker, in order)."""
        self._pool.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# --- The notice after the redirect -----------------------------------------------------


def _mac(settings: Settings, body: str) -> str:
    key = derive_key(settings.secret, NOTICE_PURPOSE)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:32]


def encode_notice(settings: Settings, notice: dict[str, Any]) -> str:
    raw = json.dumps(notice, separators=(",", ":"), ensure_ascii=False).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{body}.{_mac(settings, body)}"


def read_notice(settings: Settings, request: Request) -> dict[str, Any] | None:
    """The notice the last action left for this browser (signed: none from anyone else)."""
    value = request.cookies.get(NOTICE_COOKIE, "")
    body, _, mac = value.partition(".")
    if not body or not hmac.compare_digest(mac, _mac(settings, body)):
        return None
    try:
        notice = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    return notice if isinstance(notice, dict) else None


def forget_notice(response: Response) -> None:
    response.delete_cookie(NOTICE_COOKIE, path="/dashboard", httponly=True, samesite="strict")


# --- The routes -------------------------------------------------------------------------


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise Refused(f"{value!r} is not a date (YYYY-MM-DD)") from None


def router(portal: Portal, renders: ReportRenders) -> APIRouter:
    """The POST routes of the actions (none in the OpenAPI schema)."""
    settings = portal.settings
    routes = secretariat_router()

    def cycle_url(cycle_id: int | None, lang: str, anchor: str = "") -> str:
        if cycle_id is None:
            return f"/dashboard?lang={lang}"
        return f"/dashboard/cycles/{cycle_id}?lang={lang}" + (f"#{anchor}" if anchor else "")

    def answer(request: Request, url: str, notice: dict[str, Any]) -> Response:
        response = RedirectResponse(url, 303)
        response.set_cookie(
            NOTICE_COOKIE,
            encode_notice(settings, notice),
            max_age=300,
            httponly=True,
            samesite="strict",
            secure=portal.https(request),
            path="/dashboard",
        )
        return response

    def confirm_page(
        request: Request,
        lang: str,
        signed: SignedIn,
        form: dict[str, str],
        what: str,
        facts: list[tuple[str, str]],
        back: str,
        danger: bool = False,
    ) -> Response:
        hidden = {k: v for k, v in form.items() if k not in ("csrf_token", "confirm")}
        return portal.render_dashboard(
            request,
            "confirm.html",
            lang,
            signed,
            what=what,
            facts=facts,
            hidden=hidden,
            action=f"{request.url.path}?lang={lang}",
            back=back,
            danger=danger,
            switch=False,  # the page answers a POST: a language link would GET it
        )

    async def run(
        request: Request,
        lang: str,
        action: Callable[[Session], ActionResult],
        done: Callable[[ActionResult], tuple[str, dict[str, Any]]],
        back: str,
        back_cycle: int | None,
    ) -> Response:
        """Run the action; redirect to the cycle page with a notice of what it did."""
        try:
            result = await run_in_threadpool(perform, settings, action, render=False)
        except NotAllowed:
            raise  # a Refused too, but answered with the 403 page (``server``)
        except Refused as exc:
            return answer(request, back, {"kind": "refused", "message": str(exc)[:MAX_NOTICE]})
        if result.render and result.cycle_id is not None:
            renders.submit(result.cycle_id)
        if not result.changed:
            notice = {"kind": "unchanged", "message": result.message[:MAX_NOTICE]}
        else:
            key, params = done(result)
            notice = {"kind": "done", "key": key, "params": params}
        return answer(
            request, cycle_url(result.cycle_id or back_cycle, lang, _anchor(result)), notice
        )

    def state_label(code: str, lang: str) -> str:
        with session_scope(settings) as session:
            state = session.scalars(
                select(m.RangeState).where(m.RangeState.code == code)
            ).one_or_none()
            if state is None:
                return code
            return f"{pick(state.name, lang)} ({state.code})"

    @routes.post("/dashboard/cycles/{cycle_id}/extend", include_in_schema=False)
    async def extend(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        state = form.get("state", "").strip().upper() or None
        back = cycle_url(cycle_id, lang, f"state-{state}" if state else "actions")
        try:
            deadline = _date(form.get("deadline", ""))
        except Refused as exc:
            return answer(request, back, {"kind": "refused", "message": str(exc)})
        if form.get("confirm") != "yes":
            target = (
                await run_in_threadpool(state_label, state, lang)
                if state
                else portal.texts(lang)("whole_cycle")
            )
            facts = [
                ("confirm_target", target),
                ("new_deadline", pages.fmt_date(deadline, lang)),
                ("col_reason", form.get("reason", "")),
            ]
            return confirm_page(request, lang, signed, form, "confirm_extend", facts, back)

        def done(result: ActionResult) -> tuple[str, dict[str, Any]]:
            params = {"deadline": pages.fmt_date(deadline, lang), "count": len(result.emails)}
            if state:
                return "done_extend_state", {**params, "state": state}
            return "done_extend_cycle", params

        return await run(
            request,
            lang,
            lambda s: extend_deadline(
                s, settings, signed.actor, cycle_id, deadline, form.get("reason"), state=state
            ),
            done,
            back,
            cycle_id,
        )

    @routes.post("/dashboard/cycles/{cycle_id}/excuse", include_in_schema=False)
    async def excuse(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        state = form.get("state", "").strip().upper()
        undo = form.get("undo") == "1"
        back = cycle_url(cycle_id, lang, f"state-{state}")
        if form.get("confirm") != "yes":
            facts = [
                ("confirm_target", await run_in_threadpool(state_label, state, lang)),
                ("col_reason", form.get("reason", "")),
            ]
            what = "confirm_unexcuse" if undo else "confirm_excuse"
            return confirm_page(request, lang, signed, form, what, facts, back)
        return await run(
            request,
            lang,
            lambda s: excuse_state(s, signed.actor, cycle_id, state, form.get("reason"), undo=undo),
            lambda r: ("done_unexcuse" if undo else "done_excuse", {"state": state}),
            back,
            cycle_id,
        )

    @routes.post("/dashboard/cycles/{cycle_id}/resend", include_in_schema=False)
    async def resend(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        state = form.get("state", "").strip().upper()
        back = cycle_url(cycle_id, lang, f"state-{state}")
        if form.get("confirm") != "yes":
            facts = [
                ("confirm_target", await run_in_threadpool(state_label, state, lang)),
                ("col_reason", form.get("reason", "") or "—"),
            ]
            return confirm_page(request, lang, signed, form, "confirm_resend", facts, back)
        return await run(
            request,
            lang,
            lambda s: resend_request(
                s, settings, signed.actor, cycle_id, state, form.get("reason")
            ),
            lambda r: ("done_resend", {"state": state}),
            back,
            cycle_id,
        )

    @routes.post("/dashboard/cycles/{cycle_id}/meeting", include_in_schema=False)
    async def meeting(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        back = cycle_url(cycle_id, lang, "actions")
        # Every field is sent: an empty one removes what the cover says of it. So are the
        # texts per language of the cycle's languages ("name.ru"), when the page has them.
        fields = {name: form.get(f"meeting_{name}", "") for name in MEETING_FIELDS}
        given_in = {
            (name, language): form[f"meeting_{name}.{language}"]
            for name in MEETING_TRANSLATED
            for language in LANGUAGES
            if f"meeting_{name}.{language}" in form
        }
        fields.update({f"{name}.{language}": v for (name, language), v in given_in.items()})
        if form.get("confirm") != "yes":
            t = portal.texts(lang)
            facts = [(f"meeting_{name}", fields[name] or "—") for name in MEETING_FIELDS]
            for (name, language), value in given_in.items():
                if value:
                    field, language_name = t(f"meeting_{name}"), IN_LANGUAGE[lang][language]
                    facts.append((t("meeting_in", field=field, language=language_name), value))
            facts.append(("col_reason", form.get("reason", "") or "—"))
            return confirm_page(request, lang, signed, form, "confirm_meeting", facts, back)
        return await run(
            request,
            lang,
            lambda s: set_meeting(s, signed.actor, cycle_id, fields, form.get("reason")),
            lambda r: ("done_meeting", {}),
            back,
            cycle_id,
        )

    @routes.post("/dashboard/cycles/{cycle_id}/close", include_in_schema=False)
    async def close(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        back = cycle_url(cycle_id, lang, "actions")
        if form.get("confirm") != "yes":
            facts = [("col_reason", form.get("reason", "") or "—")]
            return confirm_page(
                request, lang, signed, form, "confirm_close", facts, back, danger=True
            )
        return await run(
            request,
            lang,
            lambda s: close_cycle(s, signed.actor, cycle_id, form.get("reason")),
            lambda r: ("done_close", {}),
            back,
            cycle_id,
        )

    @routes.post("/dashboard/cycles/{cycle_id}/publish", include_in_schema=False)
    async def release(request: Request, signed: Officer, cycle_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        kind = form.get("kind", "")
        withdraw = form.get("withdraw") == "1"
        back = cycle_url(cycle_id, lang, "publication")
        if kind not in KINDS:
            raise PortalError(400, "bad_request", lang=lang, back=back)
        if form.get("confirm") != "yes":
            facts = [
                ("confirm_what", portal.texts(lang)(f"kind_{kind.replace('-', '_')}")),
                ("col_reason", form.get("reason", "") or "—"),
            ]
            what = "confirm_withdraw" if withdraw else "confirm_publish"
            return confirm_page(request, lang, signed, form, what, facts, back, danger=withdraw)
        return await run(
            request,
            lang,
            lambda s: publish(
                s, signed.actor, cycle_id, [kind], withdraw=withdraw, reason=form.get("reason")
            ),
            lambda r: (
                "done_withdraw" if withdraw else "done_publish",
                {"what": portal.texts(lang)(f"kind_{kind.replace('-', '_')}")},
            ),
            back,
            cycle_id,
        )

    def submission_target(submission_id: int, lang: str) -> tuple[int | None, str, str]:
        """The cycle of a return, its state's code and a label for the confirmation."""
        with session_scope(settings) as session:
            found = session.get(m.Submission, submission_id)
            if found is None:
                raise PortalError(404, "not_found", lang=lang)
            code = found.state.code if found.state else ""
            name = pick(found.state.name, lang) if found.state else found.filename
            return found.cycle_id, code, f"{name} · {found.filename} (№ {found.id})"

    @routes.post("/dashboard/submissions/{submission_id}/accept", include_in_schema=False)
    async def accept(request: Request, signed: Officer, submission_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        cycle_id, code, label = await run_in_threadpool(submission_target, submission_id, lang)
        back = cycle_url(cycle_id, lang, f"state-{code}" if code else "")
        waive = sorted({v for k, v in form.items() if k.startswith("waive_") and v})
        if form.get("confirm") != "yes":
            facts = [("confirm_target", label), ("col_reason", form.get("reason", ""))]
            if waive:
                facts.append(("waived_codes", ", ".join(waive)))
            return confirm_page(request, lang, signed, form, "confirm_accept", facts, back)
        return await run(
            request,
            lang,
            lambda s: accept_return(
                s, settings, signed.actor, submission_id, form.get("reason"), waive=waive
            ),
            lambda r: ("done_accept", {"submission": submission_id}),
            back,
            cycle_id,
        )

    @routes.post("/dashboard/submissions/{submission_id}/return", include_in_schema=False)
    async def send_back(request: Request, signed: Officer, submission_id: CycleId) -> Response:
        lang = portal.lang_of(request)
        form = await read_form(portal, request, signed, lang)
        cycle_id, code, label = await run_in_threadpool(submission_target, submission_id, lang)
        back = cycle_url(cycle_id, lang, f"state-{code}" if code else "")
        comments = review_comments(form)
        if form.get("confirm") != "yes":
            facts = [("confirm_target", label)] + [("comment", c) for c in comments]
            return confirm_page(request, lang, signed, form, "confirm_return", facts, back)
        return await run(
            request,
            lang,
            lambda s: return_for_correction(s, settings, signed.actor, submission_id, comments),
            lambda r: (
                "done_return",
                {"submission": submission_id, "state": code, "count": len(comments)},
            ),
            back,
            cycle_id,
        )

    return routes


def review_comments(form: dict[str, str]) -> list[tuple[str | None, str]]:
    """The comments of the review form as (field key or None for a general one, text), as
    the core takes them; empty rows are left out, line breaks kept."""
    comments: list[tuple[str | None, str]] = []
    for row in range(1, COMMENT_ROWS + 1):
        text = form.get(f"text_{row}", "").strip()
        key = form.get(f"field_{row}", "").strip()
        if text:
            comments.append((key or None, text))
    return comments


def _anchor(result: ActionResult) -> str:
    return f"state-{result.state}" if result.state else "actions"
