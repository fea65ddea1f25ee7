"""The consolidated progress summary of a cycle: its views, its HTML and its PDF.

Autoescape is on for every template; ministry text is data, never markup or template source.
Every fixed text goes through gettext (``_()`` here and in the templates); names of states,
species, activities and choices come from the catalogue and the form specification.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mou.catalogue.reference import activity_sort_key
from mou.documents.pdf import (
    Gettext,
    document_symbol,
    environment,
    fonts_dir,
    gettext_of,
    html_to_pdf,
    locale_dir,
    w3c_moment,
)
from mou.forms.spec import FormSpec, load_form
from mou.i18n.formatting import Formatter
from mou.i18n.gettext import translations
from mou.i18n.languages import (
    LANGUAGE_NAMES_IN,
    check_language,
    is_cyrillic,
    pick,
    translations_in,
)
from mou.reporting import charts
from mou.reporting.consolidation import (
    ActivityMatrix,
    ConsolidatedCycle,
    FocalPoint,
    StateRef,
    StatusCounts,
    sort_name,
)
from mou.reporting.sections import return_sections
from mou.settings import Settings

# Symbols drawn in matrix cells (DejaVu Sans has all of them); colour repeats the meaning,
# and the legend names each one, so the matrix reads in greyscale and by screen reader.
STATUS_SYMBOLS = {
    "completed": "✔",
    "ongoing": "↻",
    "in_progress": "◐",
    "not_started": "○",
    "not_applicable": "–",
}
# Up to this many states, tables name them in full; beyond it they use ISO codes and a key.
FULL_NAME_COLUMNS = 6


def _priority_labels(_: Gettext) -> dict[str, str]:
    return {
        "high": _("High"),
        "high_medium": _("High / medium"),
        "medium": _("Medium"),
        "medium_low": _("Medium / low"),
        "low": _("Low"),
        "mixed": _("Mixed"),
        "conditional": _("Conditional"),
    }


def _by_name(states: Iterable[StateRef], language: str) -> list[StateRef]:
    return sorted(states, key=lambda s: (sort_name(s.label(language)), s.code))


def _columns(states: Iterable[StateRef], language: str) -> list[StateRef]:
    """State columns: by name when headed by names, by code when headed by codes (the code
    letters, receipts and the portal give a state: ISO 3166 alpha-2)."""
    states = list(states)
    if len(states) > FULL_NAME_COLUMNS:
        return sorted(states, key=lambda s: s.code)
    return _by_name(states, language)


def _counts_row(counts: StatusCounts, statuses: Sequence[str]) -> dict[str, Any]:
    return {
        "cells": [counts.by_status.get(s, 0) for s in statuses],
        "not_reported": counts.not_reported,
        "unreported": counts.unreported_share,
        "completion": counts.completion_share,
        "implementation": counts.implementation_share,
    }


def _matrix_view(
    matrix: ActivityMatrix, language: str, _: Gettext, fmt: Formatter
) -> dict[str, Any]:
    states = _columns(matrix.states, language)
    # Done first, then under way, then not started: the order of the chart and the tables.
    order = ["completed", "ongoing", "in_progress", "not_started", "not_applicable"]
    form_order = [value for value, _label in matrix.statuses]
    statuses = [s for s in order if s in form_order] + [s for s in form_order if s not in order]
    status_labels = {value: pick(label, language) for value, label in matrix.statuses}
    priorities = _priority_labels(_)
    is_programme = any(line.priority for g in matrix.groups for line in g.lines)
    groups = []
    for group in matrix.groups:
        issues: list[dict[str, Any]] = []
        for line in group.lines:
            if not issues or issues[-1]["code"] != line.issue_code:
                issues.append(
                    {
                        "code": line.issue_code,
                        "title": pick(line.issue_title, language),
                        "lines": [],
                    }
                )
            cells = []
            for state in states:
                status = line.statuses.get(state.code)
                cells.append(
                    {
                        "status": status or "none",
                        "symbol": STATUS_SYMBOLS.get(status or "", ""),
                        "label": status_labels.get(status or "", ""),
                    }
                )
            issues[-1]["lines"].append(
                {
                    "code": line.code,
                    "text": pick(line.label, language),
                    "subheading": pick(line.subheading, language),
                    "priority": priorities.get(line.priority or "", line.priority or ""),
                    "cells": cells,
                    # How many of the States with an accepted return gave it a status.
                    "reported": sum(1 for state in states if line.statuses.get(state.code)),
                    "done": line.counts.done,
                    "applicable": line.counts.applicable,
                }
            )
        groups.append(
            {
                "code": group.code,
                "title": pick(group.title, language),
                "heading": (_("Objective %(code)s") % {"code": group.code} if is_programme else ""),
                "issues": issues,
                "counts": _counts_row(group.counts, statuses),
            }
        )
    legend = [(s, status_labels[s]) for s in statuses] + [("not_reported", _("Not reported"))]
    chart_keys = statuses

    def stacked(label: str, counts: StatusCounts) -> charts.StackedBar:
        segments = [
            charts.Segment(key, counts.by_status.get(key, 0), status_labels.get(key, key))
            for key in chart_keys
        ]
        segments.append(charts.Segment("not_reported", counts.not_reported, _("Not reported")))
        return charts.StackedBar(label, tuple(segments), fmt.percent(counts.completion_share))

    if is_programme:
        bars = [
            stacked(_("Objective %(code)s") % {"code": g.code}, g.counts) for g in matrix.groups
        ]
        bars.append(stacked(_("All activities"), matrix.total))
    else:
        bars = [
            stacked(pick(line.label, language), line.counts)
            for g in matrix.groups
            for line in g.lines
        ]
        bars.append(stacked(_("All themes"), matrix.total))
    chart = charts.stacked_shares(
        bars,
        title=_("Status of implementation reported by the States"),
        legend=[(k, status_labels.get(k, k)) for k in chart_keys]
        + [("not_reported", _("Not reported"))],
        ticks=[fmt.percent(x / 4) for x in range(5)],
        label_width=150 if is_programme else 230,
    )
    if is_programme:
        summary_rows = [(f"{g['heading']}. {g['title']}", g["counts"]) for g in groups]
    else:
        summary_rows = [
            (pick(line.label, language), _counts_row(line.counts, statuses))
            for g in matrix.groups
            for line in g.lines
        ]
    return {
        "label": pick(matrix.label, language),
        "is_programme": is_programme,
        "summary_rows": summary_rows,
        "wide": len(states) > FULL_NAME_COLUMNS,
        "states": states,
        "statuses": [(s, status_labels[s], STATUS_SYMBOLS.get(s, "")) for s in statuses],
        "legend": legend,
        "groups": groups,
        "total": _counts_row(matrix.total, statuses),
        "priorities": [
            (priorities.get(level, level), _counts_row(counts, statuses))
            for level, counts in matrix.by_priority
        ],
        "chart": chart,
        "activity_count": sum(len(g.lines) for g in matrix.groups),
    }


def _population_view(
    consolidated: ConsolidatedCycle, language: str, _: Gettext, fmt: Formatter
) -> dict[str, Any] | None:
    population = consolidated.population
    if population is None:
        return None
    names = {s.state.code: s.state for s in population.states}
    rows = sorted(
        population.states, key=lambda s: (sort_name(s.state.label(language)), s.state.code)
    )
    previous_label = (
        _("Previous cycle (%(period)s)") % {"period": population.previous_period}
        if population.previous_period
        else None
    )
    chart = charts.population_bars(
        [
            charts.Bar(
                label=s.state.label(language),
                value=s.national_total,
                value_text=fmt.number(s.national_total),
                previous=s.previous_total,
                previous_text=fmt.number(s.previous_total),
            )
            for s in rows
        ],
        title=_("Bukhara deer: national totals as reported, by State"),
        current_label=_("This cycle (%(period)s)") % {"period": consolidated.cycle.period},
        previous_label=previous_label,
        tick_format=fmt.number,
    )

    def labels(codes: Iterable[str]) -> list[str]:
        return sorted((names[c].label(language) for c in codes if c in names), key=sort_name)

    everyone = {s.state.code: s.state.label(language) for s in consolidated.states}
    return {
        "rows": rows,
        "summary": population,
        "chart": chart,
        "new_states": labels(population.new_states),
        "missing_states": sorted(
            (everyone.get(c, c) for c in population.missing_states), key=sort_name
        ),
    }


def _threat_views(consolidated: ConsolidatedCycle, language: str) -> list[dict[str, Any]]:
    views = []
    for table in consolidated.threats:
        states = _columns(table.states, language)
        labels = {value: pick(label, language) for value, label in table.severities}
        views.append(
            {
                "label": pick(table.label, language),
                "states": states,
                "wide": len(states) > FULL_NAME_COLUMNS,
                "severities": [(v, labels[v]) for v, _label in table.severities],
                "lines": [
                    {
                        "label": pick(line.label, language),
                        "cells": [
                            (
                                line.severities.get(s.code) or "none-given",
                                labels.get(line.severities.get(s.code) or "", ""),
                            )
                            for s in states
                        ],
                    }
                    for line in table.lines
                ],
            }
        )
    return views


def text_language(text: str, return_language: str | None) -> str:
    """The language a quoted text is written in: Russian where it is in Cyrillic, else the
    language of the template it came in (the service's only languages are en, ru and fr)."""
    if is_cyrillic(text):
        return "ru"
    return return_language if return_language in ("en", "fr") else "en"


def quoted(text: str, language: str, return_language: str | None) -> dict[str, Any]:
    """A state's text as a summary in ``language`` quotes it: the original, its language
    marked (and set on the text for readers and screen readers) where it is not the report's,
    and the state's own translation into the report's language when it gave one."""
    original, given = translations_in(text)
    written_in: str | None = text_language(original, return_language)
    translation = given.get(language)
    if translation and written_in == language:
        # Translated into the report's language, so written in another (a Cyrillic place
        # name in an English text made it look Russian): the return's, if it is another.
        written_in = return_language if return_language != language else None
    return {
        "text": original,
        "lang": written_in,
        "foreign": written_in is not None and written_in != language,
        "translation": translation,
    }


def _narrative_groups(consolidated: ConsolidatedCycle, language: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    languages = {r.state.code: r.language for r in consolidated.returns}
    for narrative in consolidated.narratives:
        if not groups or groups[-1]["field"] != narrative.field_key:
            groups.append(
                {
                    "field": narrative.field_key,
                    "title": pick(narrative.field_label, language),
                    "rows": [],
                }
            )
        rows = groups[-1]["rows"]
        if not rows or rows[-1]["key"] != narrative.row_key:
            label = pick(narrative.row_label, language)
            if narrative.row_key and narrative.field_key and label and _is_code(narrative.row_key):
                label = f"{narrative.row_key} {label}"
            rows.append({"key": narrative.row_key, "label": label, "quotes": []})
        rows[-1]["quotes"].append(
            {
                "state": narrative.state,
                "column": pick(narrative.column_label, language),
                **quoted(narrative.text, language, languages.get(narrative.state.code)),
            }
        )
    for group in groups:
        for row in group["rows"]:
            row["quotes"].sort(key=lambda q: sort_name(q["state"].label(language)))
    return groups


def _focal_points_view(
    consolidated: ConsolidatedCycle, language: str, published: bool
) -> dict[str, Any] | None:
    """The annex of focal points: states per species, and per state its national focal point;
    names and addresses only when ``published``."""
    annex = consolidated.focal_points
    if annex is None:
        return None

    def points(found: Iterable[FocalPoint]) -> list[dict[str, Any]]:
        listed = sorted(found, key=lambda p: (sort_name(p.state.label(language)), p.email))
        return [
            {
                "state": p.state.label(language),
                "name": pick(p.name, language) if published else None,
                "person": p.person if published else None,
                "email": p.email if published else None,
            }
            for p in listed
        ]

    return {
        "published": published,
        "species": [
            {
                "name": _initial_capital(pick(species.name, language)),
                "scientific_name": species.scientific_name,
                "points": points(found),
            }
            for species, found in annex.by_species
        ],
        "national": [
            {"state": state.label(language), "points": points(found)}
            for state, found in sorted(
                annex.national, key=lambda row: (sort_name(row[0].label(language)), row[0].code)
            )
        ],
        "species_designated": sum(1 for _species, found in annex.by_species if found),
        "states_designated": sum(1 for _state, found in annex.national if found),
    }


def _initial_capital(text: str) -> str:
    """A catalogue name at the head of a table row: "snow leopard" -> "Snow leopard"."""
    return text[:1].upper() + text[1:]


def _is_code(value: str) -> bool:
    return all(part.isdigit() for part in value.split(".")) and "." in value


@dataclass(frozen=True)
class _Section:
    key: str
    number: int
    title: str


def progress_summary_html(
    consolidated: ConsolidatedCycle, language: str, settings: Settings
) -> str:
    """The final HTML of the progress summary (what WeasyPrint lays out)."""
    check_language(language)
    env = environment(settings, language)
    _ = gettext_of(settings, language)
    plural = translations(locale_dir(settings), language).ngettext
    fmt = Formatter(language)
    cycle = consolidated.cycle
    form = load_form(settings.forms_dir, cycle.instrument_code)
    population = _population_view(consolidated, language, _, fmt)
    matrices = [_matrix_view(m, language, _, fmt) for m in consolidated.activities]
    threats = _threat_views(consolidated, language)
    narratives = _narrative_groups(consolidated, language)
    languages = {r.state.code: r.language for r in consolidated.returns}
    proposals = [
        {
            "state": p.state,
            "text": quoted(p.text, language, languages.get(p.state.code)),
            "rationale": (
                quoted(p.rationale, language, languages.get(p.state.code)) if p.rationale else None
            ),
            "term": p.term,
            "term_label": p.term_label,
        }
        for p in sorted(
            consolidated.proposals,
            key=lambda p: (sort_name(p.state.label(language)), _row_key_order(p.row)),
        )
    ]
    statuses = sorted(
        consolidated.states, key=lambda s: (sort_name(s.state.label(language)), s.state.code)
    )
    returns = sorted(
        consolidated.returns, key=lambda r: (sort_name(r.state.label(language)), r.state.code)
    )
    annexes = [
        {
            "state": r.state,
            "status": consolidated.status_of(r.state.code),
            "sections": return_sections(
                r,
                form,
                language,
                _,
                include_empty=False,
                activity_text=True,  # the activity's title beside its number
                fonts=fonts_dir(settings),
                status_details_only=True,
            ),
            "warnings": r.warnings,
            "documents": r.documents,
        }
        for r in returns
    ]
    titles = [
        ("status", _("Submission of national reports"), True),
        ("population", _("Population of the Bukhara deer"), population is not None),
        ("implementation", _("Implementation"), bool(matrices)),
        ("threats", _("Threats"), bool(threats)),
        ("proposals", _("Proposals for the revision of the Action Plan"), _has_proposals(form)),
        ("narratives", _("Narratives from the national reports"), True),
        ("quality", _("Data quality"), True),
    ]
    sections = {}
    number = 0
    for key, title, present in titles:
        if present:
            number += 1
            sections[key] = _Section(key, number, title)
    names = {st.state.code: st.state.label(language) for st in consolidated.states}
    warnings = sorted(
        consolidated.data_quality.warnings,
        key=lambda w: sort_name(names.get(w.state_code, w.state_code)),
    )
    carried = sorted(
        consolidated.data_quality.carried_forward, key=lambda c: sort_name(c.state.label(language))
    )
    reviewed = sorted(
        consolidated.data_quality.reviewed, key=lambda r: sort_name(r.state.label(language))
    )
    symbol = document_symbol(cycle.instrument_code, cycle.period, "Inf.1")
    short_name = pick(cycle.instrument_short_name, language)
    title = _("Progress summary of national reports")
    template = env.get_template("progress_summary.html")
    return template.render(
        c=consolidated,
        cycle=cycle,
        form_title=pick(cycle.form_title, language),
        instrument_name=pick(cycle.instrument_name, language),
        short_name=short_name,
        secretariat=pick(cycle.secretariat, language),
        symbol=symbol,
        doc_title=f"{title}: {short_name}, {cycle.period}",
        title=title,
        created=w3c_moment(consolidated.generated_at),
        statuses=statuses,
        # Roles are worth a line only where they differ (Bukhara: signatories and Afghanistan).
        show_roles=len({s.state.role for s in statuses}) > 1,
        population=population,
        matrices=matrices,
        threats=threats,
        proposals=proposals,
        narratives=narratives,
        annexes=annexes,
        state_names=names,
        reviewed=reviewed,
        warnings=warnings,
        carried=carried,
        sections=sections,
        species=consolidated.species,
        focal_points=_focal_points_view(consolidated, language, settings.publish_focal_points),
        key_messages=key_messages(
            consolidated,
            language,
            _,
            fmt,
            lambda days: (
                plural("Late by %(num)s day", "Late by %(num)s days", days)
                % {"num": fmt.number(days)}
            ),
            plural,
        ),
        meeting=meeting_in(cycle.meeting, language),
        # A meeting document says its original language; without a meeting, nothing.
        original=(
            LANGUAGE_NAMES_IN[language].get(
                cycle.meeting.get("original", "en"), cycle.meeting.get("original", "en")
            )
            if cycle.meeting
            else None
        ),
    )


def meeting_in(meeting: Mapping[str, str], language: str) -> dict[str, str]:
    """The meeting as the summary in ``language`` prints it: a field the Secretariat gave in
    that language ("name.ru") instead of the one in the original language ("name")."""
    shown = {key: value for key, value in meeting.items() if "." not in key}
    for key, value in meeting.items():
        field, _, given_in = key.partition(".")
        if given_in == language:
            shown[field] = value
    return shown


def _short(text: str, limit: int = 80) -> str:
    """A title cut at a word, for a line of the key messages."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def key_messages(
    consolidated: ConsolidatedCycle,
    language: str,
    _: Gettext,
    fmt: Formatter,
    late_by: Callable[[int], str] = lambda days: f"+{days}",
    plural: Callable[[str, str, int], str] | None = None,
) -> list[str]:
    """Page 1's executive summary: who reported (on time, late), who did not; which
    activities lag most and which States report least, from the data."""
    states = sorted(consolidated.states, key=lambda s: sort_name(s.state.label(language)))

    def names(selected: Iterable[Any]) -> str:
        return ", ".join(s.state.label(language) for s in selected)

    ngettext = plural or (lambda one, many, n: one if n == 1 else many)
    # Only an accepted report counts as reported (a correction requested stands apart).
    accepted = [s for s in states if s.outcome == "accepted"]
    on_time = [s for s in accepted if s.timeliness == "on_time"]
    late = [s for s in accepted if s.timeliness == "late"]
    corrections = [s for s in states if s.outcome == "correction_requested"]
    excused = [s for s in states if s.outcome == "excused"]
    missing = [
        s for s in states if s.outcome not in ("accepted", "excused", "correction_requested")
    ]
    counts = consolidated.counts
    messages = [
        ngettext(
            "%(accepted)s of the %(asked)s States asked has reported.",
            "%(accepted)s of the %(asked)s States asked have reported.",
            len(accepted),
        )
        % {"accepted": fmt.number(len(accepted)), "asked": fmt.number(counts.requested)}
    ]
    if on_time:
        messages.append(_("By the deadline: %(states)s.") % {"states": names(on_time)})
    if late:
        messages.append(
            _("After the deadline: %(states)s.")
            % {
                "states": ", ".join(
                    f"{s.state.label(language)} ({late_by(s.days_late).lower()})"
                    if s.days_late
                    else s.state.label(language)
                    for s in late
                )
            }
        )
    if corrections:
        messages.append(
            _("Correction requested by the Secretariat: %(states)s.")
            % {"states": names(corrections)}
        )
    if missing:
        messages.append(_("No report accepted yet: %(states)s.") % {"states": names(missing)})
    if excused:
        messages.append(_("Excused from reporting: %(states)s.") % {"states": names(excused)})
    for matrix in consolidated.activities:
        lines = [
            line
            for group in matrix.groups
            for line in group.lines
            if line.counts.completion_share is not None
        ]
        if not lines:
            continue
        lowest = min(line.counts.completion_share or 0.0 for line in lines)
        tied = [line for line in lines if (line.counts.completion_share or 0.0) == lowest]
        if len(tied) > 3:
            # Many at the same lowest share: say how many, not an arbitrary three.
            messages.append(
                _("%(count)s of %(total)s items stand at %(share)s completed or ongoing.")
                % {
                    "count": fmt.number(len(tied)),
                    "total": fmt.number(len(lines)),
                    "share": fmt.percent(lowest),
                }
            )
        else:
            lagging = sorted(
                lines,
                key=lambda line: (
                    line.counts.completion_share,
                    # Programme codes in their order (1.2.1 before 1.10.1); theme keys by name.
                    activity_sort_key(line.code) if _is_code(line.code) else (),
                    line.code,
                ),
            )[:3]
            messages.append(
                _("Least advanced (share completed or ongoing): %(items)s.")
                % {
                    "items": "; ".join(
                        f"{line.code if _is_code(line.code) else ''} "
                        f"{_short(pick(line.label, language))} "
                        f"({fmt.percent(line.counts.completion_share)})".strip()
                        for line in lagging
                    )
                }
            )
        reported: dict[str, int] = {}
        for line in lines:
            for code, status in line.statuses.items():
                reported[code] = reported.get(code, 0) + (1 if status else 0)
        if reported and len(set(reported.values())) > 1:
            fewest = min(reported.values())
            least = [s for s in states if reported.get(s.state.code) == fewest]
            messages.append(
                _("Fewest items reported: %(states)s (%(count)s of %(total)s).")
                % {
                    "states": names(least),
                    "count": fmt.number(fewest),
                    "total": fmt.number(len(lines)),
                }
            )
        break  # the first matrix: the programme of work or the Action Plan themes
    return messages


def _row_key_order(row: str) -> tuple[int, Any]:
    return (0, int(row)) if row.isdigit() else (1, row)


def _has_proposals(form: FormSpec) -> bool:
    return any(f.is_table and any(c.key == "proposal" for c in f.columns) for f in form.fields)


def render_progress_summary(
    consolidated: ConsolidatedCycle, language: str, settings: Settings
) -> bytes:
    """The consolidated progress summary of a cycle as a tagged PDF in ``language``."""
    return html_to_pdf(progress_summary_html(consolidated, language, settings), settings)
