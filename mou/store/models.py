"""The project database: the record of every request, file, answer and message.

Translated text is stored as a JSON object keyed by language code ({"en": ..., "ru": ...}).
Submissions, raw files and outbox messages are append-only: corrections become new rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from mou.clock import as_utc, utcnow

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Translated = dict[str, str]


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A moment, always aware and in UTC when read back.

    PostgreSQL keeps the zone; SQLite keeps none and hands back naive values. Both are written
    in UTC here, so every reader of the database gets the same kind of datetime and no caller
    has to mend it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return as_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        Translated: JSON,
        list[str]: JSON,
    }


class Instrument(Base):
    """A CMS instrument whose range states report: the Bukhara Deer MoU, CAMI."""

    __tablename__ = "instruments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[Translated]
    short_name: Mapped[Translated]
    secretariat: Mapped[Translated]
    languages: Mapped[list[str]]
    cycle_months: Mapped[int]
    in_force: Mapped[dt.date | None] = mapped_column(Date)

    participations: Mapped[list[Participation]] = relationship(
        back_populates="instrument", order_by="Participation.id"
    )
    species: Mapped[list[Species]] = relationship(
        secondary="instrument_species", order_by="Species.id"
    )


class RangeState(Base):
    """A country in the range of the instrument's species (ISO 3166-1 alpha-2 code)."""

    __tablename__ = "range_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(2), unique=True)
    iso3: Mapped[str] = mapped_column(String(3))
    name: Mapped[Translated]
    language: Mapped[str] = mapped_column(String(2))

    authorities: Mapped[list[Authority]] = relationship(
        back_populates="state", order_by="Authority.id"
    )


class Participation(Base):
    """A state's standing in an instrument: signatory or range state."""

    __tablename__ = "participations"
    __table_args__ = (UniqueConstraint("instrument_id", "state_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    state_id: Mapped[int] = mapped_column(ForeignKey("range_states.id"))
    role: Mapped[str] = mapped_column(String(20))
    signed: Mapped[dt.date | None] = mapped_column(Date)
    recognised: Mapped[dt.date | None] = mapped_column(Date)

    instrument: Mapped[Instrument] = relationship(back_populates="participations")
    state: Mapped[RangeState] = relationship()


class Authority(Base):
    """Who letters go to: ministry of foreign affairs, focal ministry, focal point."""

    __tablename__ = "authorities"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    state_id: Mapped[int] = mapped_column(ForeignKey("range_states.id"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[Translated]
    email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(2))
    address: Mapped[str | None] = mapped_column(Text)
    # The postal address as a letter in that language writes it ({"ru": "Астана ..."}).
    addresses: Mapped[dict[str, Any] | None]
    person: Mapped[dict[str, Any] | None]
    # None: every instrument the state takes part in.
    instruments: Mapped[list[str] | None]
    # A focal point for one species (CAMI programme of work 4.1.2); None: for the country.
    species_code: Mapped[str | None] = mapped_column(String(40))
    # The Secretariat edits contacts in the database (mou contacts); the catalogue only seeds.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(60))

    state: Mapped[RangeState] = relationship(back_populates="authorities")


class Species(Base):
    __tablename__ = "species"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    scientific_name: Mapped[str] = mapped_column(String(120))
    name: Mapped[Translated]
    cms_appendix: Mapped[str | None] = mapped_column(String(10))
    cami_basis: Mapped[str | None] = mapped_column(String(40))


class InstrumentSpecies(Base):
    __tablename__ = "instrument_species"

    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"), primary_key=True)
    species_id: Mapped[int] = mapped_column(ForeignKey("species.id"), primary_key=True)


class ProgrammeHeading(Base):
    """An objective or issue heading of an instrument's programme of work."""

    __tablename__ = "programme_headings"
    __table_args__ = (UniqueConstraint("instrument_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    code: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(10))  # objective | issue
    parent_code: Mapped[str | None] = mapped_column(String(10))
    title: Mapped[Translated]


class Activity(Base):
    """A numbered activity of a programme of work (CAMI: 1.1.1 ... 4.3.1)."""

    __tablename__ = "activities"
    __table_args__ = (UniqueConstraint("instrument_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    code: Mapped[str] = mapped_column(String(10))
    position: Mapped[int]
    objective_code: Mapped[str] = mapped_column(String(10))
    issue_code: Mapped[str] = mapped_column(String(10))
    subheading: Mapped[Translated | None]
    text: Mapped[Translated]
    responsible: Mapped[Translated]
    priority_level: Mapped[str] = mapped_column(String(20))
    priority_source: Mapped[str] = mapped_column(Text)


class ReportingCycle(Base):
    """One round of reporting for an instrument, e.g. Bukhara Deer MoU 2025-2026."""

    __tablename__ = "reporting_cycles"
    __table_args__ = (UniqueConstraint("instrument_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instrument_id: Mapped[int] = mapped_column(ForeignKey("instruments.id"))
    period: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    deadline: Mapped[dt.date] = mapped_column(Date)
    form_version: Mapped[int]
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | closed
    opened_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Set when the whole cycle's deadline is extended: the deadline the requests announced.
    original_deadline: Mapped[dt.date | None] = mapped_column(Date)
    deadline_changed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The meeting the progress summary serves (mou cycle meeting): name, number, place,
    # dates, agenda_item, original (language), action (the Action requested paragraph).
    meeting: Mapped[dict[str, Any] | None]

    instrument: Mapped[Instrument] = relationship()
    requests: Mapped[list[ReportRequest]] = relationship(
        back_populates="cycle", order_by="ReportRequest.id"
    )


class ReportRequest(Base):
    """The official request to one state for one cycle (letter to MFA, cc focal ministry)."""

    __tablename__ = "report_requests"
    __table_args__ = (UniqueConstraint("cycle_id", "state_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("reporting_cycles.id"))
    state_id: Mapped[int] = mapped_column(ForeignKey("range_states.id"))
    language: Mapped[str] = mapped_column(String(2))
    reference: Mapped[str] = mapped_column(String(60), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # This state's own extended deadline (None: the cycle's).
    deadline: Mapped[dt.date | None] = mapped_column(Date)
    deadline_changed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Excused by the Secretariat from reporting in this cycle: no reminders, shown as excused.
    excused_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    excused_reason: Mapped[str | None] = mapped_column(Text)

    cycle: Mapped[ReportingCycle] = relationship(back_populates="requests")
    state: Mapped[RangeState] = relationship()


class OutboxMessage(Base):
    """An email to send exactly once; ``key`` is (cycle, state, kind, n) or (submission, kind)."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # request | reminder | receipt
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("reporting_cycles.id"))
    state_id: Mapped[int | None] = mapped_column(ForeignKey("range_states.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    sender: Mapped[str] = mapped_column(String(254))
    to: Mapped[list[str]]
    cc: Mapped[list[str]]
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # [{"filename": ..., "content_type": ..., "sha256": ...}], bytes in the file store.
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(
        String(10), default="pending"
    )  # pending|sending|sent|partial|failed|bounced
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # A sender claims a message before sending so two workers never send the same one.
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # A reply (receipt, answer to an email) names the message it answers, so it is threaded.
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    # A delivery status notification said it did not arrive (status "bounced", last_error why).
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class StoredFile(Base):
    """Raw bytes received or generated, addressed by sha256; never overwritten or deleted."""

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int]
    stored_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Submission(Base):
    """One returned file. Append-only: a correction is a new version that supersedes."""

    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("cycle_id", "state_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file_sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str | None] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(10))  # cli | inbox | portal | email
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # received -> accepted | rejected; identity fields are known once the file is read.
    status: Mapped[str] = mapped_column(String(10), default="received")
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("reporting_cycles.id"))
    state_id: Mapped[int | None] = mapped_column(ForeignKey("range_states.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("report_requests.id"))
    language: Mapped[str | None] = mapped_column(String(2))
    form_version: Mapped[int | None]
    version: Mapped[int | None]
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    ingest_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Leases of the warm workers (mou/service/intake_work.py): deciding it, writing its receipt.
    decision_claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    decision_claimed_by: Mapped[str | None] = mapped_column(String(120))  # host:pid; None: let go
    receipt_claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The intake context: state expected from the portal link or the sender's address.
    expected_state_id: Mapped[int | None] = mapped_column(ForeignKey("range_states.id"))
    expected_cycle_id: Mapped[int | None] = mapped_column(ForeignKey("reporting_cycles.id"))
    # Accepted by the Secretariat despite warnings (or, by an admin, despite named errors).
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(60))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    waived_codes: Mapped[list[str] | None]

    issues: Mapped[list[ValidationIssue]] = relationship(
        back_populates="submission", order_by="ValidationIssue.id"
    )
    answers: Mapped[list[Answer]] = relationship(back_populates="submission", order_by="Answer.id")
    cycle: Mapped[ReportingCycle | None] = relationship(foreign_keys=[cycle_id])
    state: Mapped[RangeState | None] = relationship(foreign_keys=[state_id])


class ValidationIssue(Base):
    """An error (blocks acceptance) or warning found in a submission, with its place."""

    __tablename__ = "validation_issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    severity: Mapped[str] = mapped_column(String(10))  # error | warning
    code: Mapped[str] = mapped_column(String(40))
    field_key: Mapped[str | None] = mapped_column(String(120))
    sheet: Mapped[str | None] = mapped_column(String(100))
    cell: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)

    submission: Mapped[Submission] = relationship(back_populates="issues")


class Answer(Base):
    """One value of an accepted submission: scalar (row and column ''), or a table cell."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("submission_id", "field_key", "row_key", "column_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"))
    field_key: Mapped[str] = mapped_column(String(60))
    row_key: Mapped[str] = mapped_column(String(40), default="")
    column_key: Mapped[str] = mapped_column(String(60), default="")
    value: Mapped[Any] = mapped_column(JSON)
    carried_forward: Mapped[bool] = mapped_column(Boolean, default=False)

    submission: Mapped[Submission] = relationship(back_populates="answers")


class SignInFailure(Base):
    """A failed sign-in (a wrong password on the form or ``/api/session``, an unknown bearer
    token), while it counts: one row for the client and one for the account name tried.

    Kept in the project database, not in a process, so a restart does not forget them and every
    portal process sharing the database counts the same ones; rows older than the throttle's
    window are deleted as new ones arrive.
    """

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    # An IP address, or the /64 network of an IPv6 one (mou.portal.security.client_key), or
    # "@" and an account name (name_key).
    client: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)


class User(Base):
    """A named Secretariat account. Roles: admin (users, settings), officer (every cycle
    action), reader (view only)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(60))
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class UserSession(Base):
    """A signed-in browser. Only the token's hash is kept; signing out revokes the row."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    client: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class AuditEvent(Base):
    """One Secretariat action: who, when, what, on which cycle, state or return, and why."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(40))
    cycle_id: Mapped[int | None] = mapped_column(ForeignKey("reporting_cycles.id"), index=True)
    state_id: Mapped[int | None] = mapped_column(ForeignKey("range_states.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    state: Mapped[RangeState | None] = relationship()


class CorrectionRequest(Base):
    """A return sent back to its state for correction, with the Secretariat's comments; the
    state's next return answers it."""

    __tablename__ = "correction_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), unique=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("reporting_cycles.id"), index=True)
    state_id: Mapped[int] = mapped_column(ForeignKey("range_states.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    requested_by: Mapped[str] = mapped_column(String(60))
    # The state's next return, decided after the request.
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    comments: Mapped[list[ReviewComment]] = relationship(
        back_populates="correction", order_by="ReviewComment.id"
    )


class ReviewComment(Base):
    """One comment of a correction request: on a field (with its sheet and cell) or general."""

    __tablename__ = "review_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    correction_id: Mapped[int] = mapped_column(ForeignKey("correction_requests.id"))
    field_key: Mapped[str | None] = mapped_column(String(120))
    sheet: Mapped[str | None] = mapped_column(String(100))
    cell: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    # Once answered: whether the next return changed this field (None: general comment).
    changed: Mapped[bool | None] = mapped_column(Boolean)

    correction: Mapped[CorrectionRequest] = relationship(back_populates="comments")


class Publication(Base):
    """A release of a cycle's PDFs on the portal's public page; withdrawn releases are kept."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("reporting_cycles.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # reports | national-reports
    released_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    released_by: Mapped[str] = mapped_column(String(60))
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    withdrawn_by: Mapped[str | None] = mapped_column(String(60))


class ContactChange(Base):
    """One change to a contact, for its history: who changed which field, from what to what."""

    __tablename__ = "contact_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    authority_id: Mapped[int] = mapped_column(ForeignKey("authorities.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(60))
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[Any] = mapped_column(JSON)
    new: Mapped[Any] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class MailMessage(Base):
    """A message read from the Secretariat's mailbox, recorded (raw bytes and this row)
    before anything is done with it. ``key`` is its Message-ID (or the sha256 of its bytes
    when it has none), so reading it again finds this row; ``handled_at`` says its effects
    (submissions, an answer, a bounce marked) are committed."""

    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    message_id: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(254))  # the From address
    from_header: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_date: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    folder: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # return | no_workbook | auto_reply | bounce | ignored, once handled.
    kind: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)  # what was done, in a line
    handled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # The outbox message it answers (In-Reply-To / References), or that it says bounced.
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_messages.id"))


class MailSubmission(Base):
    """A return that came in a mailbox message (its receipt is a reply to that message)."""

    __tablename__ = "mail_submissions"
    __table_args__ = (UniqueConstraint("mail_message_id", "submission_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_message_id: Mapped[int] = mapped_column(ForeignKey("mail_messages.id"))
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)

    mail_message: Mapped[MailMessage] = relationship()


class SupportingDocument(Base):
    """A document sent beside a return (a national plan, a map, a legal text): kept with the
    submission, its type sniffed from its bytes, never parsed."""

    __tablename__ = "supporting_documents"
    __table_args__ = (UniqueConstraint("submission_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("stored_files.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int]
    channel: Mapped[str] = mapped_column(String(10))  # email | portal
    mail_message_id: Mapped[int | None] = mapped_column(ForeignKey("mail_messages.id"))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
