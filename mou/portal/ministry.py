"""A ministry's personal link: its upload page, the template download, the upload with its
refusals (403 CSRF, 400, 408, 409, 413, 415) and the page of one submission.

Every upload goes through the same intake as the drop folder (``receive_file``: raw bytes and
row committed, event emitted); it is then ingested by ``process_submission`` in the inline
pool of the service (``InlineIngest``, always under `mou serve`), or by the Prefect deployment
trigger when the portal runs apart from the service with an API configured.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from mou.clock import utcnow
from mou.cycle.context import template_for
from mou.errors import Refused
from mou.i18n.languages import LANGUAGE_NAMES, pick
from mou.intake.documents import document_problem, keep_document
from mou.portal import pages
from mou.portal.cycle_page import form_fields
from mou.portal.security import (
    CSRF_FIELD,
    BodyTimeout,
    BodyTooLarge,
    content_disposition,
    limited_stream,
    sniff_spreadsheet,
)
from mou.portal.shared import MAX_ID, Portal, PortalError
from mou.service.protocol import INGEST_INLINE, INGEST_QUEUED, receive_file
from mou.settings import Settings
from mou.store.database import session_scope
from mou.workbook import XLSX_CONTENT_TYPE

MAX_DOCUMENTS = 5  # supporting documents uploaded beside one workbook
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the CSRF field


def router(portal: Portal) -> APIRouter:
    """The pages of a personal link, under /r/{token} (none of them in the OpenAPI schema)."""
    settings = portal.settings
    routes = APIRouter()

    def upload_page_response(
        request: Request, link: pages.LinkContext, lang: str, status: int = 200
    ) -> Response:
        token = link.token
        with session_scope(settings) as session:
            versions = [pages.submission_view(s) for s in pages.link_submissions(session, link)]
        csrf, fresh = portal.csrf(request, f"link:{token}")
        template_lang = lang if lang in link.instrument_languages else link.request_language
        response = portal.render(
            request,
            "upload.html",
            lang,
            status=status,
            link=link,
            state_name=pick(link.state_names, lang),
            versions=versions,
            current=next((v for v in versions if v.current), None),
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            limit_mb=max(1, settings.max_upload_bytes // 2**20),
            page_url=f"/r/{token}?lang={lang}",
            upload_url=f"/r/{token}/upload?lang={lang}",
            template_url=f"/r/{token}/template?lang={template_lang}",
            template_language=LANGUAGE_NAMES.get(template_lang, template_lang),
            passed=utcnow().date() > link.deadline,
            field_labels=dict(form_fields(settings, link.instrument, lang))
            if link.correction
            else {},
        )
        portal.set_csrf_cookie(response, request, fresh)
        return response

    @routes.get("/r/{token}", include_in_schema=False)
    def upload_page(request: Request, token: str) -> Response:
        lang = portal.lang_of(request)
        link = portal.resolve(token, lang if "lang" in request.query_params else None)
        lang = portal.lang_of(request, link.request_language)
        return upload_page_response(request, link, lang)

    @routes.get("/r/{token}/template", include_in_schema=False)
    def template_download(request: Request, token: str) -> Response:
        link = portal.resolve(token)
        lang = portal.lang_of(request, link.request_language)
        if lang not in link.instrument_languages:
            lang = link.request_language
        try:
            with session_scope(settings) as session:
                data = template_for(session, settings, link.cycle_id, link.state, lang)
        except Refused:
            raise PortalError(404, "not_found", lang=lang) from None
        filename = f"{link.instrument}-{link.period}-{link.state}-{lang}.xlsx"
        return Response(
            data,
            media_type=XLSX_CONTENT_TYPE,
            headers={"content-disposition": content_disposition(filename, "template.xlsx")},
        )

    @routes.post("/r/{token}/upload", include_in_schema=False)
    async def upload(request: Request, token: str) -> Response:
        link = await run_in_threadpool(portal.resolve, token)
        lang = portal.lang_of(request, link.request_language)
        back = f"/r/{token}?lang={lang}"
        limit = settings.max_upload_bytes
        limit_mb = max(1, limit // 2**20)
        too_large = PortalError(413, "too_large", lang=lang, params={"limit": limit_mb}, back=back)
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise PortalError(400, "bad_request", lang=lang, back=back)
            if int(declared) > limit + FORM_OVERHEAD:
                raise too_large  # answered before a byte of the body is read
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise PortalError(400, "bad_request", lang=lang, back=back)
        parser = MultiPartParser(
            request.headers,
            limited_stream(request.stream(), limit + FORM_OVERHEAD),
            max_files=1 + MAX_DOCUMENTS,
            max_fields=4,
            max_part_size=16 * 1024,
        )
        try:
            form = await parser.parse()
        except BodyTooLarge:
            raise too_large from None
        except BodyTimeout:
            raise PortalError(408, "timeout", lang=lang, back=back) from None
        except MultiPartException:
            raise PortalError(400, "bad_request", lang=lang, back=back) from None
        try:
            portal.check_csrf(request, f"link:{token}", form.get(CSRF_FIELD), lang)
            workbook = form.get("workbook")
            if not isinstance(workbook, UploadFile):
                raise PortalError(400, "no_file", lang=lang, back=back)
            data = await workbook.read(limit + 1)
            filename = workbook.filename or ""
            # Supporting documents beside the workbook (optional; within the same limit).
            documents = [
                (upload.filename or "", await upload.read(limit + 1))
                for upload in form.getlist("documents")
                if isinstance(upload, UploadFile) and upload.filename
            ]
        finally:
            await form.close()
        if len(data) > limit:
            raise too_large
        documents = [(name, content) for name, content in documents if content]
        for name, content in documents:
            if document_problem(settings, name, content) is not None:
                raise PortalError(
                    415, "unsupported_document", lang=lang, params={"name": name}, back=back
                )
        sniffed = sniff_spreadsheet(filename, data[:8])
        if not sniffed.ok:
            if sniffed.reason == "no_file":
                raise PortalError(400, "no_file", lang=lang, back=back)
            raise PortalError(
                415,
                "unsupported",
                lang=lang,
                extra=["howto_excel", "howto_libreoffice", "howto_template"],
                back=back,
            )
        submission_id, _ = await run_in_threadpool(
            receive_file,
            settings,
            data,
            filename=filename,
            state=link.state,
            cycle_id=link.cycle_id,
            channel="portal",
            ingest=INGEST_INLINE if portal.ingest_here() else INGEST_QUEUED,
        )

        def visible_status() -> str | None:
            with session_scope(settings) as session:
                found = pages.link_submission(session, link, submission_id)
                return found.status if found else None

        status = await run_in_threadpool(visible_status)
        if status is None:  # the same bytes were received before, for another request
            raise PortalError(409, "duplicate", lang=lang, back=back)
        if documents:
            await run_in_threadpool(_keep_documents, settings, submission_id, documents)
        if status == "received" and portal.ingest_here():
            portal.start_ingest(submission_id)
        return RedirectResponse(f"/r/{token}/submissions/{submission_id}?lang={lang}", 303)

    @routes.get("/r/{token}/submissions/{submission_id}", include_in_schema=False)
    def submission_page(
        request: Request, token: str, submission_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        link = portal.resolve(token)
        lang = portal.lang_of(request, link.request_language)
        with session_scope(settings) as session:
            found = pages.link_submission(session, link, submission_id)
            if found is None:
                raise PortalError(404, "not_found", lang=lang, back=f"/r/{token}?lang={lang}")
            view = pages.submission_view(found)
            versions = [pages.submission_view(s) for s in pages.link_submissions(session, link)]
        return portal.render(
            request,
            "submission.html",
            lang,
            link=link,
            state_name=pick(link.state_names, lang),
            s=view,
            versions=versions,
            refresh=2 if view.kind == "checking" else None,
            page_url=f"/r/{token}?lang={lang}",
            self_url=f"{request.url.path}?lang={lang}",
        )

    return routes


def _keep_documents(
    settings: Settings, submission_id: int, documents: list[tuple[str, bytes]]
) -> None:
    with session_scope(settings) as session:
        for name, content in documents:
            keep_document(session, settings, submission_id, name, content, channel="portal")
