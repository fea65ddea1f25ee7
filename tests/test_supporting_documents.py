"""Supporting documents beside a return (national plans, maps, legal texts): uploaded on the
portal with the workbook (CSRF-protected like it), their type told by their bytes, kept with
the submission, listed and downloadable on the dashboard, named in the state's annex of the
progress summary. (By email: tests/test_mailbox.py.)"""

# The portal tests' module fixture `env` is imported, and named by the tests that use it.
# ruff: noqa: F811

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from mou.reporting.consolidation import consolidate
from mou.reporting.progress_summary import progress_summary_html
from mou.store import models as m
from mou.store.database import session_scope
from tests.accounts import make_user, sign_in
from tests.test_portal import (  # noqa: F401
    Env,
    csrf_of,
    decided,
    env,
    text_of,
)
from tests.test_protocol import filled_return

PLAN = b"%PDF-1.7\n% national action plan for the Bukhara deer\n" + b"1" * 3000
MAP = b"\x89PNG\r\n\x1a\n" + b"\0" * 500


def upload_with_documents(
    env: Env, state: str, workbook: bytes, documents: list[tuple[str, bytes]]
) -> object:
    path = env.path(state)
    csrf = csrf_of(env.client.get(path).text)
    return env.client.post(
        f"{path}/upload",
        data={"csrf_token": csrf},
        files=[
            ("workbook", ("report.xlsx", workbook, "application/octet-stream")),
            *[("documents", (name, data, "application/octet-stream")) for name, data in documents],
        ],
        follow_redirects=False,
    )


def test_documents_uploaded_beside_the_workbook_are_kept_listed_and_downloadable(
    env: Env,
) -> None:
    workbook = filled_return(env.settings, env.cycle_id, "UZ", national_total=1901)
    response = upload_with_documents(
        env, "UZ", workbook, [("Plan d'action.pdf", PLAN), ("range map.png", MAP)]
    )
    assert response.status_code == 303, response.text
    submission_id = int(re.search(r"/submissions/(\d+)", response.headers["location"]).group(1))
    decided(env, env.path("UZ"), submission_id)
    with session_scope(env.settings) as session:
        kept = session.scalars(
            select(m.SupportingDocument).filter_by(submission_id=submission_id)
        ).all()
        assert sorted((d.filename, d.content_type, d.channel) for d in kept) == [
            ("Plan d'action.pdf", "application/pdf", "portal"),
            ("range map.png", "image/png", "portal"),
        ]
        plan_id = next(d.id for d in kept if d.filename.endswith(".pdf"))

    client = TestClient(env.client.app)
    refused = client.get(f"/dashboard/documents/{plan_id}", follow_redirects=False)
    assert refused.status_code == 303 and "/dashboard/login" in refused.headers["location"]
    user = make_user(env.settings, "reader")
    assert sign_in(client, user.name, user.password).status_code == 303
    page = text_of(client.get(f"/dashboard/cycles/{env.cycle_id}").text)
    assert "Plan d'action.pdf (PDF, 3 KB)" in page and "range map.png (PNG image, 1 KB)" in page
    download = client.get(f"/dashboard/documents/{plan_id}")
    assert download.status_code == 200 and download.content == PLAN
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    assert client.get("/dashboard/documents/999999").status_code == 404

    # The state's annex of the progress summary names them.
    with session_scope(env.settings) as session:
        consolidated = consolidate(session, env.cycle_id, forms_dir=env.settings.forms_dir)
    [uz] = [r for r in consolidated.returns if r.state.code == "UZ"]
    assert [d.filename for d in uz.documents] == ["Plan d'action.pdf", "range map.png"]
    html = progress_summary_html(consolidated, "ru", env.settings)
    annex = html[html.index('id="annex-UZ"') :]
    assert "Сопроводительные документы" in annex and "range map.png (PNG, 1 KB)" in annex


def test_a_document_of_another_type_refuses_the_upload_and_records_nothing(env: Env) -> None:
    workbook = filled_return(env.settings, env.cycle_id, "KZ", national_total=1902)
    before = env.count(m.Submission)
    response = upload_with_documents(
        env, "KZ", workbook, [("plan.pdf", b"MZ\x90\x00 a program, not a plan")]
    )
    assert response.status_code == 415
    assert "plan.pdf" in text_of(response.text)
    assert env.count(m.Submission) == before
    assert env.count(m.SupportingDocument, filename="plan.pdf") == 0


def test_documents_need_the_forms_csrf_token(env: Env) -> None:
    workbook = filled_return(env.settings, env.cycle_id, "KZ", national_total=1903)
    response = env.client.post(
        f"{env.path('KZ')}/upload",
        data={"csrf_token": "forged"},
        files=[
            ("workbook", ("report.xlsx", workbook, "application/octet-stream")),
            ("documents", ("plan.pdf", PLAN, "application/pdf")),
        ],
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert env.count(m.SupportingDocument, filename="plan.pdf") == 0
