"""What a ``mou demo`` run reports: each step, reminder run and cycle, and where things are.

The records are read back from the database after the run (``cycle_summary``, ``demo_report``);
``DemoReport.lines`` is what ``mou demo`` prints, ``DemoReport.as_dict`` what ``--json`` does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from mou.demo.scenario import Scenario
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope


@dataclass
class StepResult:
    """One step of the story: the submission it made and how the service decided it."""

    day: dt.date
    instrument: str
    state: str
    kind: str
    channel: str
    done_before: bool  # taken by an earlier run: nothing was sent again
    submission_id: int | None = None
    status: str | None = None
    version: int | None = None
    issues: list[str] = field(default_factory=list)  # error codes


@dataclass
class ReminderRun:
    """One day's reminder run: how many were sent, to which states of which cycle."""

    day: dt.date
    sent: int  # new reminders
    states: dict[str, list[str]] = field(default_factory=dict)  # "instrument period" -> states


@dataclass
class CycleSummary:
    """One cycle at the end of the run: its states, returns and progress summaries."""

    cycle_id: int
    instrument: str
    period: str
    deadline: dt.date
    created: bool
    states: list[str]
    accepted: list[str]  # states with a current accepted return
    submissions: int
    rejected: int
    superseded: int
    late: list[str]  # reported after the deadline in the demo's timeline
    corrected: list[str]  # refused first, then accepted
    pdfs: list[Path]  # the cycle's progress summaries, one per instrument language
    rendered: list[Path]  # those (re)written by this run


@dataclass
class DemoReport:
    """Where everything is, with counts; ``lines()`` is what ``mou demo`` prints."""

    database: str
    var_dir: Path
    files_dir: Path
    raw_files: int  # stored files (returns and generated attachments), sha256-addressed
    returns: int  # submissions recorded (all versions)
    outbox: dict[str, int]  # messages by kind
    outbox_status: dict[str, int]  # messages by status
    transport: str  # "files" or "smtp host:port"
    outbox_dir: Path | None  # .eml files when no SMTP relay is configured
    eml_files: int
    cycles: list[CycleSummary]
    steps: list[StepResult]
    reminders: list[ReminderRun]
    new_submissions: int  # in this run
    new_messages: int  # in this run
    opened_on: dt.date

    @property
    def pdfs(self) -> list[Path]:
        """Every cycle's progress summaries."""
        return [pdf for cycle in self.cycles for pdf in cycle.pdfs]

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (what ``mou demo --json`` prints), with ``pdfs``."""
        data = asdict(self)
        data["pdfs"] = self.pdfs
        return data

    def lines(self) -> list[str]:
        """A short account for a terminal."""
        out = []
        for cycle in self.cycles:
            how = "opened" if cycle.created else "already existed, reused"
            out.append(
                f"{cycle.instrument} {cycle.period} (cycle {cycle.cycle_id}, deadline "
                f"{cycle.deadline:%Y-%m-%d}): {how}"
            )
            out.append(
                f"  accepted {len(cycle.accepted)}/{len(cycle.states)} states; "
                f"{cycle.submissions} files received, {cycle.rejected} refused, "
                f"{cycle.superseded} superseded"
            )
            if cycle.corrected:
                out.append(f"  refused then corrected: {', '.join(cycle.corrected)}")
            if cycle.late:
                out.append(f"  reported after the deadline: {', '.join(cycle.late)}")
        for run in self.reminders:
            who = "; ".join(f"{k}: {', '.join(v)}" for k, v in run.states.items()) or "none due"
            out.append(f"reminders on {run.day:%Y-%m-%d}: {run.sent} new ({who})")
        out.append(f"database: {self.database}")
        out.append(f"raw files: {self.files_dir} ({self.raw_files} files, {self.returns} returns)")
        kinds = ", ".join(f"{n} {kind}s" for kind, n in sorted(self.outbox.items()))
        if self.outbox_dir is not None:
            out.append(f"emails: {self.outbox_dir} ({self.eml_files} .eml files; {kinds})")
        else:
            out.append(f"emails: sent through {self.transport} ({kinds})")
        for cycle in self.cycles:
            for pdf in cycle.pdfs:
                note = "" if pdf in cycle.rendered else " (up to date, kept)"
                out.append(f"report: {pdf}{note}")
        if self.new_submissions == 0 and self.new_messages == 0:
            out.append("nothing new: every step had been taken by an earlier run")
        else:
            out.append(
                f"this run: {self.new_submissions} returns received, "
                f"{self.new_messages} emails queued"
            )
        return out


# --------------------------------------------------------------------------------------------
# Read back from the database
# --------------------------------------------------------------------------------------------


def count_rows(settings: Settings, model: Any) -> int:
    """How many rows the table of ``model`` holds."""
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def cycle_summary(
    settings: Settings,
    scenario: Scenario,
    cycle_id: int,
    created: bool,
    pdfs: list[Path],
    rendered: list[Path],
) -> CycleSummary:
    """The cycle's states and returns from the database; late and corrected from the story.

    ``pdfs``: the cycle's progress summaries; ``rendered``: those this run wrote.
    """
    with session_scope(settings) as session:
        cycle = session.get(m.ReportingCycle, cycle_id)
        assert cycle is not None
        states = [r.state.code for r in cycle.requests]
        rows = session.execute(
            select(m.RangeState.code, m.Submission.status, m.Submission.superseded_by_id)
            .join(m.RangeState, m.Submission.state_id == m.RangeState.id)
            .where(m.Submission.cycle_id == cycle_id)
        ).all()
        deadline = cycle.deadline
    accepted = sorted({s for s, status, by in rows if status == "accepted" and by is None})
    first_accepted: dict[str, int] = {}
    for step in scenario.steps:
        if step.kind != "errors":
            first_accepted.setdefault(step.state, step.offset)
    return CycleSummary(
        cycle_id=cycle_id,
        instrument=scenario.instrument,
        period=scenario.period,
        deadline=deadline,
        created=created,
        states=states,
        accepted=accepted,
        submissions=len(rows),
        rejected=sum(1 for _, status, _ in rows if status == "rejected"),
        superseded=sum(1 for _, _, by in rows if by is not None),
        late=sorted(s for s, offset in first_accepted.items() if offset > 0),
        corrected=sorted({s.state for s in scenario.steps if s.kind == "errors"}),
        pdfs=pdfs,
        rendered=rendered,
    )


def demo_report(
    settings: Settings,
    today: dt.date,
    cycles: list[CycleSummary],
    steps: list[StepResult],
    reminders: list[ReminderRun],
    submissions_before: int,
    messages_before: int,
) -> DemoReport:
    """The run's report: the given records, with the database's counts and the run's new ones.

    ``submissions_before``, ``messages_before``: the counts before the run; ``today``: the day
    the cycles were opened.
    """
    with session_scope(settings) as session:
        kinds = dict(
            session.execute(
                select(m.OutboxMessage.kind, func.count(m.OutboxMessage.id)).group_by(
                    m.OutboxMessage.kind
                )
            ).all()
        )
        statuses = dict(
            session.execute(
                select(m.OutboxMessage.status, func.count(m.OutboxMessage.id)).group_by(
                    m.OutboxMessage.status
                )
            ).all()
        )
    smtp = bool(settings.smtp_host)
    outbox_dir = None if smtp else settings.outbox_dir
    submissions = count_rows(settings, m.Submission)
    messages = count_rows(settings, m.OutboxMessage)
    return DemoReport(
        database=make_url(settings.effective_database_url).render_as_string(hide_password=True),
        var_dir=settings.var_dir,
        files_dir=settings.files_dir,
        raw_files=count_rows(settings, m.StoredFile),
        returns=submissions,
        outbox=kinds,
        outbox_status=statuses,
        transport=f"smtp {settings.smtp_host}:{settings.smtp_port}" if smtp else "files",
        outbox_dir=outbox_dir,
        eml_files=len(list(outbox_dir.glob("*.eml"))) if outbox_dir and outbox_dir.exists() else 0,
        cycles=cycles,
        steps=steps,
        reminders=reminders,
        new_submissions=submissions - submissions_before,
        new_messages=messages - messages_before,
        opened_on=today,
    )
