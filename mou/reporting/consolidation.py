"""Consolidation of a reporting cycle: the latest accepted return of each state, as plain data.

``consolidate(session, cycle_id)`` reads the project database once and returns frozen
dataclasses (no ORM objects), which the PDF renderer, the export and ``mou status`` share.

Rules (each a judgement written down here so reports and exports agree):

- Only the latest accepted, non-superseded submission of a state counts; older versions and
  refused or pending files never contribute answers.
- Timeliness: a state is on time when its *first accepted* version was received on or before
  the deadline (UTC calendar date). A correction sent after the deadline of a return that was
  accepted in time does not make the state late; a return refused in time and corrected late
  is late, because nothing usable arrived by the deadline.
- The previous cycle is the latest cycle of the same instrument that started before this one
  and has accepted data; population change compares national totals as reported.
- Which fields play which part (population sites, threats, activity status, proposals) is read
  from the form specification: tables with an ``activity_status`` column are activity
  matrices, tables with a ``severity`` column are threat tables, tables with a ``proposal``
  column hold proposals, multiline text is narrative. A form without such fields simply has no
  such section.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.catalogue.reference import activity_sort_key
from mou.errors import Refused
from mou.forms.spec import FieldSpec, FormSpec, load_form
from mou.i18n.languages import pick
from mou.store import models as m

Translated = Mapping[str, str]
Outcome = Literal["accepted", "refused", "pending", "not_received"]
Timeliness = Literal["on_time", "late"]

# Field keys with a fixed meaning in the population section (Bukhara Deer MoU form).
POPULATION_TABLE = "population_sites"
NATIONAL_TOTAL = "national_total"
NATIONAL_TREND = "national_trend"
# Choice lists and column keys that mark the parts of a form (see module docstring).
STATUS_CHOICES = "activity_status"
SEVERITY_CHOICES = "severity"
PROPOSAL_COLUMN = "proposal"
ACTIVITIES_SOURCE = "@activities"
SPECIES_SOURCE = "@species"

# Statuses that count as work done or under way; "not_applicable" is left out of shares.
DONE = ("completed", "ongoing")
STARTED = ("completed", "ongoing", "in_progress")
NOT_APPLICABLE = "not_applicable"


def sort_name(text: str) -> str:
    """A sort key that ignores case and accents ("Ouzbékistan" sorts with "Ouz...")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# --------------------------------------------------------------------------------------------
# Plain data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateRef:
    """A participating state, with its names from the catalogue."""

    code: str
    iso3: str
    name: Translated
    language: str
    role: str  # signatory | range_state

    def label(self, language: str) -> str:
        return pick(self.name, language)


@dataclass(frozen=True)
class SpeciesRef:
    code: str
    scientific_name: str
    name: Translated


@dataclass(frozen=True)
class CycleInfo:
    """The cycle and its instrument."""

    id: int
    instrument_code: str
    instrument_name: Translated
    instrument_short_name: Translated
    secretariat: Translated
    instrument_languages: tuple[str, ...]
    period: str
    period_start: dt.date
    period_end: dt.date
    deadline: dt.date
    form_id: str
    form_version: int
    form_title: Translated
    status: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    # Labels of the form's catalogue-driven lists: "@activities" and "@species" -> value -> text.
    catalogue_choices: Mapping[str, Mapping[str, Translated]] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerValue:
    """One stored answer: scalar (row and column "") or a table cell."""

    field_key: str
    row_key: str
    column_key: str
    value: Any
    carried_forward: bool


@dataclass(frozen=True)
class DataWarning:
    """A validation warning that remained on an accepted return."""

    state_code: str
    code: str
    field_key: str | None
    field_label: Translated | None
    sheet: str | None
    cell: str | None
    message: str


@dataclass(frozen=True)
class StateReturn:
    """What one accepted submission says, in form order."""

    cycle: CycleInfo
    state: StateRef
    submission_id: int
    version: int
    filename: str
    language: str | None
    received_at: dt.datetime
    decided_at: dt.datetime | None
    answers: tuple[AnswerValue, ...]
    warnings: tuple[DataWarning, ...]

    def value(self, field_key: str, row_key: str = "", column_key: str = "") -> Any:
        for answer in self.answers:
            if (answer.field_key, answer.row_key, answer.column_key) == (
                field_key,
                row_key,
                column_key,
            ):
                return answer.value
        return None

    def table(self, field_key: str) -> dict[str, dict[str, Any]]:
        """Rows of a table answer, in stored order: {row_key: {column_key: value}}."""
        rows: dict[str, dict[str, Any]] = {}
        for answer in self.answers:
            if answer.field_key == field_key and answer.column_key:
                rows.setdefault(answer.row_key, {})[answer.column_key] = answer.value
        return rows

    def carried_forward(self, field_key: str, row_key: str = "", column_key: str = "") -> bool:
        return any(
            a.carried_forward
            for a in self.answers
            if (a.field_key, a.row_key, a.column_key) == (field_key, row_key, column_key)
        )


@dataclass(frozen=True)
class SubmissionStatus:
    """Where one state stands in the cycle."""

    state: StateRef
    request_reference: str | None
    request_created_at: dt.datetime | None
    request_dispatched_at: dt.datetime | None
    reminders_sent: int
    last_reminder_at: dt.datetime | None
    files_received: int
    first_received_at: dt.datetime | None
    accepted_version: int | None
    accepted_received_at: dt.datetime | None
    accepted_at: dt.datetime | None
    first_accepted_received_at: dt.datetime | None
    outcome: Outcome
    timeliness: Timeliness | None
    days_late: int | None

    @property
    def requested_at(self) -> dt.datetime | None:
        return self.request_dispatched_at or self.request_created_at


@dataclass(frozen=True)
class PopulationSite:
    row: str
    site: str
    protected_area: str | None
    year: int | None
    count: int | None
    method: str | None
    method_label: Translated | None
    trend: str | None
    trend_label: Translated | None


@dataclass(frozen=True)
class StatePopulation:
    state: StateRef
    sites: tuple[PopulationSite, ...]
    sites_total: int
    national_total: int | None
    national_trend: str | None
    national_trend_label: Translated | None
    previous_total: int | None
    change: int | None

    @property
    def totals_differ(self) -> bool:
        return self.national_total is not None and self.national_total != self.sites_total


@dataclass(frozen=True)
class PopulationSummary:
    states: tuple[StatePopulation, ...]
    reported_total: int
    sites_total: int
    previous_cycle_id: int | None
    previous_period: str | None
    previous_total: int | None
    change: int | None
    # Totals over the states that reported a national total in both cycles.
    comparable_states: tuple[str, ...]
    comparable_previous_total: int | None
    comparable_change: int | None
    # States whose national total is in only one of the two cycles.
    new_states: tuple[str, ...]
    missing_states: tuple[str, ...]


@dataclass(frozen=True)
class StatusCounts:
    """Cell counts of a state × activity matrix (cells of states with an accepted return)."""

    by_status: Mapping[str, int]
    not_reported: int

    @property
    def applicable(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != NOT_APPLICABLE)

    @property
    def done(self) -> int:
        return sum(self.by_status.get(s, 0) for s in DONE)

    @property
    def started(self) -> int:
        return sum(self.by_status.get(s, 0) for s in STARTED)

    @property
    def completion_share(self) -> float | None:
        """Completed or ongoing, as a share of the cells where the activity applies."""
        return self.done / self.applicable if self.applicable else None

    @property
    def implementation_share(self) -> float | None:
        """Completed, ongoing or in progress, as a share of applicable cells."""
        return self.started / self.applicable if self.applicable else None


@dataclass(frozen=True)
class ActivityLine:
    code: str
    label: Translated
    issue_code: str | None
    issue_title: Translated | None
    subheading: Translated | None
    priority: str | None
    priority_source: str | None
    statuses: Mapping[str, str | None]  # state code -> status value (None: left empty)
    counts: StatusCounts


@dataclass(frozen=True)
class ActivityGroup:
    code: str
    title: Translated
    lines: tuple[ActivityLine, ...]
    counts: StatusCounts


@dataclass(frozen=True)
class ActivityMatrix:
    field_key: str
    label: Translated
    states: tuple[StateRef, ...]  # states with an accepted return
    statuses: tuple[tuple[str, Translated], ...]  # the status choices, in form order
    groups: tuple[ActivityGroup, ...]
    by_priority: tuple[tuple[str, StatusCounts], ...]
    total: StatusCounts


@dataclass(frozen=True)
class ThreatLine:
    value: str
    label: Translated
    severities: Mapping[str, str | None]


@dataclass(frozen=True)
class ThreatTable:
    field_key: str
    label: Translated
    states: tuple[StateRef, ...]
    severities: tuple[tuple[str, Translated], ...]
    lines: tuple[ThreatLine, ...]


@dataclass(frozen=True)
class Proposal:
    state: StateRef
    row: str
    text: str
    term: str | None
    term_label: Translated | None
    rationale: str | None


@dataclass(frozen=True)
class Narrative:
    """Free text from a return, attributed to its state and to the question it answers."""

    state: StateRef
    field_key: str
    field_label: Translated
    row_key: str
    row_label: Translated | None
    column_key: str
    column_label: Translated | None
    text: str


@dataclass(frozen=True)
class CarriedForward:
    state: StateRef
    field_key: str
    field_label: Translated
    cells: int


@dataclass(frozen=True)
class DataQuality:
    warnings: tuple[DataWarning, ...]
    carried_forward: tuple[CarriedForward, ...]


@dataclass(frozen=True)
class CycleCounts:
    participants: int
    requested: int
    received: int
    accepted: int
    on_time: int
    late: int
    refused: int
    pending: int
    not_received: int


@dataclass(frozen=True)
class ConsolidatedCycle:
    """Everything the reports and exports of one cycle say."""

    cycle: CycleInfo
    generated_at: dt.datetime  # from the data (latest decision), so renders are reproducible
    counts: CycleCounts
    states: tuple[SubmissionStatus, ...]
    returns: tuple[StateReturn, ...]
    population: PopulationSummary | None
    activities: tuple[ActivityMatrix, ...]
    threats: tuple[ThreatTable, ...]
    proposals: tuple[Proposal, ...]
    narratives: tuple[Narrative, ...]
    data_quality: DataQuality
    species: tuple[SpeciesRef, ...] = field(default=())

    def status_of(self, state_code: str) -> SubmissionStatus:
        for status in self.states:
            if status.state.code == state_code:
                return status
        raise KeyError(state_code)

    def return_of(self, state_code: str) -> StateReturn | None:
        for returned in self.returns:
            if returned.state.code == state_code:
                return returned
        return None


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _translated(text: Any) -> dict[str, str]:
    return {k: v for k, v in text.model_dump().items() if v}


class _Labels:
    """Labels of choice values and rows, from the form and the catalogue."""

    def __init__(
        self,
        form: FormSpec,
        activities: Sequence[m.Activity],
        species: Sequence[m.Species],
    ) -> None:
        self.form = form
        self.activities = {a.code: a for a in activities}
        self.activity_order = {a.code: a.position for a in activities}
        self.species = {s.code: dict(s.name) for s in species}

    def choices(self, name: str | None) -> dict[str, Translated]:
        if not name:
            return {}
        if name == ACTIVITIES_SOURCE:
            return {code: dict(a.text) for code, a in self.activities.items()}
        if name == SPECIES_SOURCE:
            return dict(self.species)
        return {c.value: _translated(c.label) for c in self.form.choices.get(name, ())}

    def choice(self, name: str | None, value: Any) -> Translated | None:
        if not isinstance(value, str):
            return None
        return self.choices(name).get(value)

    def row_order(self, spec: FieldSpec) -> dict[str, int]:
        if spec.row_source == ACTIVITIES_SOURCE:
            return dict(self.activity_order)
        if spec.row_source:
            return {value: i for i, value in enumerate(self.choices(spec.row_source))}
        return {}

    def row_sort_key(self, spec: FieldSpec, row_key: str) -> tuple[int, Any]:
        order = self.row_order(spec)
        if row_key in order:
            return (0, order[row_key])
        if row_key.isdigit():
            return (0, int(row_key))
        if spec.row_source == ACTIVITIES_SOURCE:
            try:
                return (1, activity_sort_key(row_key))
            except ValueError:
                pass
        return (2, row_key)

    def row_label(self, spec: FieldSpec, row_key: str) -> Translated | None:
        if spec.row_source:
            return self.choice(spec.row_source, row_key)
        return None


def _state_ref(state: m.RangeState, role: str) -> StateRef:
    return StateRef(
        code=state.code,
        iso3=state.iso3,
        name=dict(state.name),
        language=state.language,
        role=role,
    )


def _cycle_info(cycle: m.ReportingCycle, form: FormSpec, labels: _Labels) -> CycleInfo:
    instrument = cycle.instrument
    return CycleInfo(
        id=cycle.id,
        instrument_code=instrument.code,
        instrument_name=dict(instrument.name),
        instrument_short_name=dict(instrument.short_name),
        secretariat=dict(instrument.secretariat),
        instrument_languages=tuple(instrument.languages),
        period=cycle.period,
        period_start=cycle.period_start,
        period_end=cycle.period_end,
        deadline=cycle.deadline,
        form_id=form.form_id,
        form_version=cycle.form_version,
        form_title=_translated(form.title),
        status=cycle.status,
        opened_at=_utc(cycle.opened_at) or dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        closed_at=_utc(cycle.closed_at),
        catalogue_choices={
            ACTIVITIES_SOURCE: labels.choices(ACTIVITIES_SOURCE),
            SPECIES_SOURCE: labels.choices(SPECIES_SOURCE),
        },
    )


def _default_forms_dir() -> Path:
    from mou.settings import get_settings

    return get_settings().forms_dir


def latest_accepted(session: Session, cycle_id: int) -> dict[int, m.Submission]:
    """The submission that counts for each state: latest accepted and not superseded."""
    rows = session.scalars(
        select(m.Submission)
        .where(
            m.Submission.cycle_id == cycle_id,
            m.Submission.status == "accepted",
            m.Submission.superseded_by_id.is_(None),
            m.Submission.state_id.is_not(None),
        )
        .order_by(m.Submission.state_id, m.Submission.version, m.Submission.id)
    ).all()
    counted: dict[int, m.Submission] = {}
    for submission in rows:
        # Two non-superseded accepted versions should not exist; if they do, the higher wins.
        counted[submission.state_id] = submission  # type: ignore[index]
    return counted


def _field_order(form: FormSpec) -> dict[str, int]:
    return {f.key: i for i, f in enumerate(form.fields)}


def _answers_for(session: Session, submission_ids: Iterable[int]) -> dict[int, list[m.Answer]]:
    ids = list(submission_ids)
    by_submission: dict[int, list[m.Answer]] = defaultdict(list)
    if not ids:
        return by_submission
    for answer in session.scalars(
        select(m.Answer).where(m.Answer.submission_id.in_(ids)).order_by(m.Answer.id)
    ):
        by_submission[answer.submission_id].append(answer)
    return by_submission


def _warnings_for(
    session: Session, submissions: Mapping[int, m.Submission]
) -> dict[int, list[m.ValidationIssue]]:
    ids = [s.id for s in submissions.values()]
    by_submission: dict[int, list[m.ValidationIssue]] = defaultdict(list)
    if not ids:
        return by_submission
    for issue in session.scalars(
        select(m.ValidationIssue)
        .where(
            m.ValidationIssue.submission_id.in_(ids),
            m.ValidationIssue.severity == "warning",
        )
        .order_by(m.ValidationIssue.id)
    ):
        by_submission[issue.submission_id].append(issue)
    return by_submission


def _sorted_answers(
    answers: Iterable[m.Answer], form: FormSpec, labels: _Labels
) -> tuple[AnswerValue, ...]:
    order = _field_order(form)
    specs = {f.key: f for f in form.fields}

    def key(a: m.Answer) -> tuple[Any, ...]:
        spec = specs.get(a.field_key)
        if spec is None:
            return (len(order), a.field_key, (2, a.row_key), 0, a.column_key)
        columns = [c.key for c in spec.columns]
        column = columns.index(a.column_key) if a.column_key in columns else len(columns)
        return (order[a.field_key], "", labels.row_sort_key(spec, a.row_key), column, "")

    return tuple(
        AnswerValue(a.field_key, a.row_key, a.column_key, a.value, bool(a.carried_forward))
        for a in sorted(answers, key=key)
    )


def _field_label(form: FormSpec, key: str | None) -> Translated | None:
    if not key:
        return None
    try:
        return _translated(form.field(key).label)
    except KeyError:
        return None


def _read_return(
    cycle_info: CycleInfo,
    state: StateRef,
    submission: m.Submission,
    answers: Iterable[m.Answer],
    issues: Iterable[m.ValidationIssue],
    form: FormSpec,
    labels: _Labels,
) -> StateReturn:
    return StateReturn(
        cycle=cycle_info,
        state=state,
        submission_id=submission.id,
        version=submission.version or 1,
        filename=submission.filename,
        language=submission.language,
        received_at=_utc(submission.received_at),  # type: ignore[arg-type]
        decided_at=_utc(submission.decided_at),
        answers=_sorted_answers(answers, form, labels),
        warnings=tuple(
            DataWarning(
                state_code=state.code,
                code=issue.code,
                field_key=issue.field_key,
                field_label=_field_label(form, issue.field_key),
                sheet=issue.sheet,
                cell=issue.cell,
                message=issue.message,
            )
            for issue in issues
        ),
    )


def _labels_for(session: Session, instrument: m.Instrument, form: FormSpec) -> _Labels:
    activities = session.scalars(
        select(m.Activity)
        .where(m.Activity.instrument_id == instrument.id)
        .order_by(m.Activity.position)
    ).all()
    return _Labels(form, activities, instrument.species)


def read_return(
    session: Session, submission_id: int, *, forms_dir: Path | None = None
) -> StateReturn:
    """One submission's answers as read (for the receipt), whether or not it still counts."""
    submission = session.get(m.Submission, submission_id)
    if submission is None or submission.cycle is None or submission.state is None:
        raise Refused(f"submission {submission_id} does not exist or has not been read yet")
    cycle = submission.cycle
    form = load_form(forms_dir or _default_forms_dir(), cycle.instrument.code)
    labels = _labels_for(session, cycle.instrument, form)
    roles = {p.state_id: p.role for p in cycle.instrument.participations}
    state = _state_ref(submission.state, roles.get(submission.state.id, "range_state"))
    issues = [i for i in submission.issues if i.severity == "warning"]
    return _read_return(
        _cycle_info(cycle, form, labels),
        state,
        submission,
        submission.answers,
        issues,
        form,
        labels,
    )


def _statuses(
    session: Session,
    cycle: m.ReportingCycle,
    states: Mapping[int, StateRef],
    counted: Mapping[int, m.Submission],
) -> tuple[SubmissionStatus, ...]:
    requests = {r.state_id: r for r in cycle.requests}
    reminders: dict[int, list[dt.datetime]] = defaultdict(list)
    for message in session.scalars(
        select(m.OutboxMessage)
        .where(
            m.OutboxMessage.cycle_id == cycle.id,
            m.OutboxMessage.kind == "reminder",
            m.OutboxMessage.sent_at.is_not(None),
        )
        .order_by(m.OutboxMessage.sent_at, m.OutboxMessage.id)
    ):
        if message.state_id is not None:
            reminders[message.state_id].append(_utc(message.sent_at))  # type: ignore[arg-type]
    submissions: dict[int, list[m.Submission]] = defaultdict(list)
    for submission in session.scalars(
        select(m.Submission)
        .where(m.Submission.cycle_id == cycle.id, m.Submission.state_id.is_not(None))
        .order_by(m.Submission.received_at, m.Submission.id)
    ):
        submissions[submission.state_id].append(submission)  # type: ignore[index]

    result = []
    for state_id, state in states.items():
        request = requests.get(state_id)
        files = submissions.get(state_id, [])
        accepted = counted.get(state_id)
        accepted_files = [s for s in files if s.status == "accepted"]
        first_accepted = _utc(accepted_files[0].received_at) if accepted_files else None
        outcome: Outcome
        if accepted is not None:
            outcome = "accepted"
        elif not files:
            outcome = "not_received"
        elif files[-1].status == "rejected":
            outcome = "refused"
        else:
            outcome = "pending"
        timeliness: Timeliness | None = None
        days_late: int | None = None
        if accepted is not None and first_accepted is not None:
            late_by = (first_accepted.date() - cycle.deadline).days
            timeliness = "late" if late_by > 0 else "on_time"
            days_late = max(late_by, 0)
        sent = reminders.get(state_id, [])
        result.append(
            SubmissionStatus(
                state=state,
                request_reference=request.reference if request else None,
                request_created_at=_utc(request.created_at) if request else None,
                request_dispatched_at=_utc(request.dispatched_at) if request else None,
                reminders_sent=len(sent),
                last_reminder_at=sent[-1] if sent else None,
                files_received=len(files),
                first_received_at=_utc(files[0].received_at) if files else None,
                accepted_version=accepted.version if accepted else None,
                accepted_received_at=_utc(accepted.received_at) if accepted else None,
                accepted_at=_utc(accepted.decided_at) if accepted else None,
                first_accepted_received_at=first_accepted,
                outcome=outcome,
                timeliness=timeliness,
                days_late=days_late,
            )
        )
    return tuple(result)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _site_rows(returned: StateReturn, form: FormSpec, labels: _Labels) -> list[PopulationSite]:
    spec = form.field(POPULATION_TABLE)
    columns = {c.key: c for c in spec.columns}
    rows = returned.table(POPULATION_TABLE)
    sites = []
    for row_key in sorted(rows, key=lambda r: labels.row_sort_key(spec, r)):
        row = rows[row_key]
        method = row.get("count_method")
        trend = row.get("trend")
        method_choices = columns["count_method"].choices if "count_method" in columns else None
        trend_choices = columns["trend"].choices if "trend" in columns else None
        sites.append(
            PopulationSite(
                row=row_key,
                site=str(row.get("site") or ""),
                protected_area=row.get("protected_area") or None,
                year=_as_int(row.get("count_year")),
                count=_as_int(row.get("count")),
                method=method,
                method_label=labels.choice(method_choices, method),
                trend=trend,
                trend_label=labels.choice(trend_choices, trend),
            )
        )
    return sites


def _national_totals(session: Session, cycle_id: int) -> dict[str, int]:
    """National totals as reported, by state code, from a cycle's counted returns."""
    counted = latest_accepted(session, cycle_id)
    if not counted:
        return {}
    by_id = {s.id: s for s in counted.values()}
    totals: dict[str, int] = {}
    rows = session.execute(
        select(m.Answer.submission_id, m.Answer.value).where(
            m.Answer.submission_id.in_(list(by_id)),
            m.Answer.field_key == NATIONAL_TOTAL,
            m.Answer.row_key == "",
            m.Answer.column_key == "",
        )
    ).all()
    for submission_id, value in rows:
        number = _as_int(value)
        state = by_id[submission_id].state
        if number is not None and state is not None:
            totals[state.code] = number
    return totals


def _previous_cycle(session: Session, cycle: m.ReportingCycle) -> m.ReportingCycle | None:
    earlier = session.scalars(
        select(m.ReportingCycle)
        .where(
            m.ReportingCycle.instrument_id == cycle.instrument_id,
            m.ReportingCycle.period_start < cycle.period_start,
        )
        .order_by(m.ReportingCycle.period_start.desc(), m.ReportingCycle.id.desc())
    ).all()
    for candidate in earlier:
        if latest_accepted(session, candidate.id):
            return candidate
    return None


def _population(
    session: Session,
    cycle: m.ReportingCycle,
    returns: Sequence[StateReturn],
    form: FormSpec,
    labels: _Labels,
) -> PopulationSummary | None:
    keys = {f.key for f in form.fields}
    if POPULATION_TABLE not in keys and NATIONAL_TOTAL not in keys:
        return None
    previous = _previous_cycle(session, cycle)
    previous_totals = _national_totals(session, previous.id) if previous else {}
    if not previous_totals:
        previous = None  # accepted returns without national totals give nothing to compare
    trend_choices = form.field(NATIONAL_TREND).choices if NATIONAL_TREND in keys else None
    states = []
    for returned in returns:
        sites = _site_rows(returned, form, labels) if POPULATION_TABLE in keys else []
        total = _as_int(returned.value(NATIONAL_TOTAL))
        trend = returned.value(NATIONAL_TREND)
        before = previous_totals.get(returned.state.code)
        states.append(
            StatePopulation(
                state=returned.state,
                sites=tuple(sites),
                sites_total=sum(s.count or 0 for s in sites),
                national_total=total,
                national_trend=trend if isinstance(trend, str) else None,
                national_trend_label=labels.choice(trend_choices, trend),
                previous_total=before,
                change=total - before if total is not None and before is not None else None,
            )
        )
    reported = {s.state.code: s.national_total for s in states if s.national_total is not None}
    comparable = tuple(code for code in reported if code in previous_totals)
    has_previous = previous is not None and bool(previous_totals)
    previous_total = sum(previous_totals.values()) if has_previous else None
    comparable_previous = sum(previous_totals[c] for c in comparable) if has_previous else None
    reported_total = sum(reported.values())
    return PopulationSummary(
        states=tuple(states),
        reported_total=reported_total,
        sites_total=sum(s.sites_total for s in states),
        previous_cycle_id=previous.id if previous else None,
        previous_period=previous.period if previous else None,
        previous_total=previous_total,
        change=reported_total - previous_total if previous_total is not None else None,
        comparable_states=comparable,
        comparable_previous_total=comparable_previous,
        comparable_change=(
            sum(reported[c] for c in comparable) - comparable_previous
            if comparable_previous is not None
            else None
        ),
        new_states=tuple(c for c in reported if has_previous and c not in previous_totals),
        missing_states=tuple(code for code in sorted(previous_totals) if code not in reported),
    )


def _counts(cells: Iterable[str | None], statuses: Sequence[str]) -> StatusCounts:
    by_status = dict.fromkeys(statuses, 0)
    missing = 0
    for value in cells:
        if value is None:
            missing += 1
        else:
            by_status[value] = by_status.get(value, 0) + 1
    return StatusCounts(by_status=by_status, not_reported=missing)


def status_column(spec: FieldSpec) -> FieldSpec | None:
    """The activity-status column of a table, if it has one."""
    for column in spec.columns:
        if column.type == "choice" and column.choices == STATUS_CHOICES:
            return column
    return None


def _activity_matrices(
    session: Session,
    instrument: m.Instrument,
    returns: Sequence[StateReturn],
    form: FormSpec,
    labels: _Labels,
) -> tuple[ActivityMatrix, ...]:
    headings = {
        h.code: h
        for h in session.scalars(
            select(m.ProgrammeHeading).where(m.ProgrammeHeading.instrument_id == instrument.id)
        )
    }
    matrices = []
    for spec in form.fields:
        column = status_column(spec) if spec.is_table else None
        if column is None or not spec.row_source:
            continue
        status_values = list(labels.choices(column.choices))
        tables = {r.state.code: r.table(spec.key) for r in returns}

        def line_statuses(
            row_key: str, tables: dict[str, Any] = tables, key: str = column.key
        ) -> dict[str, Any]:
            return {
                code: (table.get(row_key, {}).get(key) or None) for code, table in tables.items()
            }

        grouped: dict[str, list[ActivityLine]] = {}
        titles: dict[str, Translated] = {}
        if spec.row_source == ACTIVITIES_SOURCE:
            for code, activity in labels.activities.items():
                statuses = line_statuses(code)
                issue = headings.get(activity.issue_code)
                grouped.setdefault(activity.objective_code, []).append(
                    ActivityLine(
                        code=code,
                        label=dict(activity.text),
                        issue_code=activity.issue_code,
                        issue_title=dict(issue.title) if issue else None,
                        subheading=dict(activity.subheading) if activity.subheading else None,
                        priority=activity.priority_level,
                        priority_source=activity.priority_source,
                        statuses=statuses,
                        counts=_counts(statuses.values(), status_values),
                    )
                )
            for code in grouped:
                heading = headings.get(code)
                titles[code] = dict(heading.title) if heading else {"en": code}
        else:
            # A choice-list row source (Bukhara Deer MoU: Action Plan themes): one group.
            for value, label in labels.choices(spec.row_source).items():
                statuses = line_statuses(value)
                grouped.setdefault(spec.key, []).append(
                    ActivityLine(
                        code=value,
                        label=label,
                        issue_code=None,
                        issue_title=None,
                        subheading=None,
                        priority=None,
                        priority_source=None,
                        statuses=statuses,
                        counts=_counts(statuses.values(), status_values),
                    )
                )
            titles[spec.key] = _translated(spec.label)

        def group_key(code: str) -> tuple[Any, ...]:
            try:
                return (0, activity_sort_key(code))
            except ValueError:
                return (1, code)

        groups = []
        for code in sorted(grouped, key=group_key):
            lines = grouped[code]
            cells = [v for line in lines for v in line.statuses.values()]
            groups.append(
                ActivityGroup(
                    code=code,
                    title=titles[code],
                    lines=tuple(lines),
                    counts=_counts(cells, status_values),
                )
            )
        priorities: dict[str, list[str | None]] = {}
        for group in groups:
            for line in group.lines:
                if line.priority:
                    priorities.setdefault(line.priority, []).extend(line.statuses.values())
        all_cells = [v for g in groups for line in g.lines for v in line.statuses.values()]
        matrices.append(
            ActivityMatrix(
                field_key=spec.key,
                label=_translated(spec.label),
                states=tuple(r.state for r in returns),
                statuses=tuple(labels.choices(column.choices).items()),
                groups=tuple(groups),
                by_priority=tuple(
                    (level, _counts(cells, status_values))
                    for level, cells in sorted(
                        priorities.items(), key=lambda item: PRIORITY_ORDER.get(item[0], 99)
                    )
                ),
                total=_counts(all_cells, status_values),
            )
        )
    return tuple(matrices)


PRIORITY_ORDER = {
    "high": 0,
    "high_medium": 1,
    "medium": 2,
    "medium_low": 3,
    "low": 4,
    "mixed": 5,
    "conditional": 6,
}


def _threat_tables(
    returns: Sequence[StateReturn], form: FormSpec, labels: _Labels
) -> tuple[ThreatTable, ...]:
    tables = []
    for spec in form.fields:
        if not spec.is_table or not spec.row_source:
            continue
        severity = next((c for c in spec.columns if c.choices == SEVERITY_CHOICES), None)
        if severity is None:
            continue
        answers = {r.state.code: r.table(spec.key) for r in returns}
        lines = tuple(
            ThreatLine(
                value=value,
                label=label,
                severities={
                    code: (rows.get(value, {}).get(severity.key) or None)
                    for code, rows in answers.items()
                },
            )
            for value, label in labels.choices(spec.row_source).items()
        )
        tables.append(
            ThreatTable(
                field_key=spec.key,
                label=_translated(spec.label),
                states=tuple(r.state for r in returns),
                severities=tuple(labels.choices(severity.choices).items()),
                lines=lines,
            )
        )
    return tuple(tables)


def _proposal_fields(form: FormSpec) -> list[FieldSpec]:
    return [
        f for f in form.fields if f.is_table and any(c.key == PROPOSAL_COLUMN for c in f.columns)
    ]


def _proposals(
    returns: Sequence[StateReturn], form: FormSpec, labels: _Labels
) -> tuple[Proposal, ...]:
    proposals = []
    for spec in _proposal_fields(form):
        term = next((c for c in spec.columns if c.key == "term"), None)
        for returned in returns:
            rows = returned.table(spec.key)
            for row_key in sorted(rows, key=lambda r: labels.row_sort_key(spec, r)):
                row = rows[row_key]
                text = row.get(PROPOSAL_COLUMN)
                if not isinstance(text, str) or not text.strip():
                    continue
                value = row.get("term")
                proposals.append(
                    Proposal(
                        state=returned.state,
                        row=row_key,
                        text=text,
                        term=value if isinstance(value, str) else None,
                        term_label=labels.choice(term.choices if term else None, value),
                        rationale=row.get("rationale") or None,
                    )
                )
    return tuple(proposals)


def _narratives(
    returns: Sequence[StateReturn], form: FormSpec, labels: _Labels
) -> tuple[Narrative, ...]:
    proposal_keys = {f.key for f in _proposal_fields(form)}
    narratives = []
    for spec in form.fields:
        if spec.key in proposal_keys:
            continue
        if spec.type == "text" and spec.multiline:
            for returned in returns:
                text = returned.value(spec.key)
                if isinstance(text, str) and text.strip():
                    narratives.append(
                        Narrative(
                            returned.state,
                            spec.key,
                            _translated(spec.label),
                            "",
                            None,
                            "",
                            None,
                            text,
                        )
                    )
        elif spec.is_table:
            text_columns = [c for c in spec.columns if c.type == "text" and c.multiline]
            if not text_columns:
                continue
            # Row by row, then state by state: what each state says about the same activity
            # or threat stands together.
            tables = {r.state.code: r.table(spec.key) for r in returns}
            row_keys = sorted(
                {k for rows in tables.values() for k in rows},
                key=lambda r: labels.row_sort_key(spec, r),
            )
            for row_key in row_keys:
                for column in text_columns:
                    for returned in returns:
                        text = tables[returned.state.code].get(row_key, {}).get(column.key)
                        if isinstance(text, str) and text.strip():
                            narratives.append(
                                Narrative(
                                    returned.state,
                                    spec.key,
                                    _translated(spec.label),
                                    row_key,
                                    labels.row_label(spec, row_key),
                                    column.key,
                                    _translated(column.label),
                                    text,
                                )
                            )
    return tuple(narratives)


def _data_quality(returns: Sequence[StateReturn], form: FormSpec) -> DataQuality:
    order = _field_order(form)
    carried = []
    for returned in returns:
        cells: dict[str, int] = defaultdict(int)
        for answer in returned.answers:
            if answer.carried_forward:
                cells[answer.field_key] += 1
        for key in sorted(cells, key=lambda k: (order.get(k, len(order)), k)):
            carried.append(
                CarriedForward(
                    returned.state, key, _field_label(form, key) or {"en": key}, cells[key]
                )
            )
    return DataQuality(
        warnings=tuple(w for r in returns for w in r.warnings),
        carried_forward=tuple(carried),
    )


def consolidate(
    session: Session, cycle_id: int, *, forms_dir: Path | None = None
) -> ConsolidatedCycle:
    """The consolidated dataset of one cycle (latest accepted, non-superseded returns)."""
    cycle = session.get(m.ReportingCycle, cycle_id)
    if cycle is None:
        raise Refused(f"reporting cycle {cycle_id} does not exist: see `mou status`")
    instrument = cycle.instrument
    form = load_form(forms_dir or _default_forms_dir(), instrument.code)
    labels = _labels_for(session, instrument, form)
    cycle_info = _cycle_info(cycle, form, labels)

    participations = sorted(
        instrument.participations, key=lambda p: (sort_name(pick(p.state.name, "en")), p.id)
    )
    states = {p.state_id: _state_ref(p.state, p.role) for p in participations}
    counted = latest_accepted(session, cycle.id)
    # A state that reported without being listed as a participant still appears.
    for state_id, submission in sorted(counted.items()):
        if state_id not in states and submission.state is not None:
            states[state_id] = _state_ref(submission.state, "range_state")

    answers = _answers_for(session, (s.id for s in counted.values()))
    warnings = _warnings_for(session, counted)
    returns = tuple(
        _read_return(
            cycle_info,
            state,
            counted[state_id],
            answers.get(counted[state_id].id, []),
            warnings.get(counted[state_id].id, []),
            form,
            labels,
        )
        for state_id, state in states.items()
        if state_id in counted
    )
    statuses = _statuses(session, cycle, states, counted)
    decisions = [r.decided_at for r in returns if r.decided_at is not None]
    generated_at = max(decisions) if decisions else cycle_info.opened_at
    return ConsolidatedCycle(
        cycle=cycle_info,
        generated_at=generated_at,
        counts=CycleCounts(
            participants=len(statuses),
            requested=sum(1 for s in statuses if s.request_reference is not None),
            received=sum(1 for s in statuses if s.files_received),
            accepted=sum(1 for s in statuses if s.outcome == "accepted"),
            on_time=sum(1 for s in statuses if s.timeliness == "on_time"),
            late=sum(1 for s in statuses if s.timeliness == "late"),
            refused=sum(1 for s in statuses if s.outcome == "refused"),
            pending=sum(1 for s in statuses if s.outcome == "pending"),
            not_received=sum(1 for s in statuses if s.outcome == "not_received"),
        ),
        states=statuses,
        returns=returns,
        population=_population(session, cycle, returns, form, labels),
        activities=_activity_matrices(session, instrument, returns, form, labels),
        threats=_threat_tables(returns, form, labels),
        proposals=_proposals(returns, form, labels),
        narratives=_narratives(returns, form, labels),
        data_quality=_data_quality(returns, form),
        species=tuple(
            SpeciesRef(s.code, s.scientific_name, dict(s.name)) for s in instrument.species
        ),
    )
