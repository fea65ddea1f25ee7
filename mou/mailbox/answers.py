"""The one answer to mail that is not a return: no workbook was found, and what to attach.

In the state's language when the sender (or the request answered) names a state, else in
English and Russian, the languages every range state of the instruments reads. A reply in
the message's thread, marked ``Auto-Submitted: auto-replied`` (``mou.mail.message``).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from mou.i18n.formatting import Formatter
from mou.i18n.texts import Messages
from mou.intake.receipts import reply_subject
from mou.mail.outbox import enqueue_message
from mou.settings import Settings
from mou.store import models as m

BILINGUAL = ("en", "ru")
ANSWER_KIND = "mail-answer"


def answer_key(mail_id: int) -> str:
    return f"mail-answer:{mail_id}"


def enqueue_no_workbook_answer(
    session: Session, settings: Settings, row: m.MailMessage, state: m.RangeState | None
) -> tuple[m.OutboxMessage, bool]:
    """Enqueue the answer to a message with no workbook; once per message (its key)."""
    assert row.sender
    languages = (state.language,) if state is not None else BILINGUAL
    moment = row.sent_date or row.received_at
    texts = [Messages(settings.forms_dir, language) for language in languages]
    body = "\n\n----\n\n".join(
        t.email("no_workbook_body", received=Formatter(language).moment(moment))
        for t, language in zip(texts, languages, strict=True)
    )
    subject = " / ".join(t.email("no_workbook_subject") for t in texts)
    if row.subject.strip():
        body = f"{subject}\n\n{body}"
        subject = reply_subject(row.subject)
    references = [*(row.references or "").split(), *([row.message_id] if row.message_id else [])]
    return enqueue_message(
        session,
        settings,
        key=answer_key(row.id),
        kind=ANSWER_KIND,
        to=[row.sender],
        cc=[],
        subject=subject,
        body_text=body,
        state_id=state.id if state is not None else None,
        in_reply_to=row.message_id,
        references=references[-20:],
    )
