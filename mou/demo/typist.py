"""The typist: answers one form as a ministry officer of one state would type them.

Driven by the form specification only: every field is answered from its type, choices and
bounds, or from the state's profile in ``mou.demo.sample_data``; texts come from
``mou.demo.sample_texts``. Answers are *typed* values: choice labels in the template's
language, "Yes"/"Да" for booleans, datetimes for dates, numbers as numbers.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mou.demo.sample_data import DEFAULT_PEOPLE, INSTITUTION, PEOPLE, POSITIONS, TOTALS
from mou.demo.sample_texts import FALLBACK_TEXT, NO, TEXTS, YES
from mou.forms.spec import FieldSpec, FormSpec
from mou.i18n.languages import pick

# A return's answers, as ``mou.demo.synthetic.fill_workbook`` takes them.
Answers = dict[str, Any]

# How likely an optional answer is given, and how often each choice is picked: officers skip
# some optional cells, and most activities are under way rather than finished.
OPTIONAL_SHARE = 0.85
ROW_SHARE: dict[str, float] = {"@activities": 0.4}  # share of listed rows reported on
# Optional answers given more or less often than OPTIONAL_SHARE ("table.column" or key):
# officers always give their contact; they explain only some activities.
ANSWER_SHARE: dict[str, float] = {
    "focal_point_name": 1.0,
    "focal_point_email": 1.0,
    "national_focal_point_name": 1.0,
    "national_focal_point_email": 1.0,
    "activities.narrative": 0.3,
}
CHOICE_WEIGHTS: dict[str, dict[str, int]] = {
    "activity_status": {
        "in_progress": 4,
        "ongoing": 4,
        "completed": 2,
        "not_started": 1,
        "not_applicable": 1,
    },
    "severity": {"none": 1, "low": 3, "medium": 3, "high": 2, "unknown": 1},
    "trend": {"increasing": 3, "stable": 3, "decreasing": 1, "fluctuating": 1, "unknown": 1},
}
# A row with one of these answers needs nothing more (no narrative for "not applicable").
QUIET_VALUES = frozenset({"not_applicable", "not_started", "none"})


def _email(latin_name: str) -> str:
    parts = latin_name.lower().replace("'", "").split()
    return f"{parts[0][0]}.{parts[-1]}@example.org"


@dataclass
class Typist:
    """Answers one form as an officer of one state would type them.

    Call ``setup`` with the state's name, then ``answers`` for the return; the answers follow
    from ``rng``, so a seeded ``rng`` types the same return every time.
    """

    form: FormSpec
    state: str
    language: str
    rng: random.Random
    species: dict[str, str]  # code -> label in the language, every species of the instrument
    plausible: list[str]  # the state's species codes
    activities: list[str]
    period_end: dt.date
    submitted: dt.date
    profile: Mapping[str, Any]
    words: dict[str, str] = field(default_factory=dict)

    def person(self, index: int) -> tuple[str, str]:
        """(name as typed, email) of the state's index-th fictitious person."""
        people = PEOPLE.get(self.state, DEFAULT_PEOPLE)
        latin, cyrillic = people[index % len(people)]
        return (cyrillic if self.language == "ru" else latin), _email(latin)

    def setup(self, state_name: str) -> None:
        """Fix the words sample texts are filled with: institution, first person, state."""
        name, email = self.person(0)
        self.words = {
            "institution": pick(INSTITUTION, self.language),
            "person": name,
            "email": email,
            "position": pick(POSITIONS[0], self.language),
            "state": state_name,
        }

    # -- choices -------------------------------------------------------------------------
    def options(self, ref: str) -> list[tuple[str, str]]:
        """(stored value, label) pairs of a choice list, ``@species`` or ``@activities``."""
        if ref == "@species":
            return list(self.species.items())
        if ref == "@activities":
            return [(code, code) for code in self.activities]
        return [(c.value, c.label(self.language)) for c in self.form.choices[ref]]

    def label(self, ref: str, value: str) -> str:
        """The label the template shows for a stored choice value."""
        return dict(self.options(ref))[value]

    def choose(self, ref: str) -> str:
        """A stored choice value, weighted where the data says how officers answer."""
        if ref == "@species":
            return self.rng.choice(self.plausible)
        values = [value for value, _ in self.options(ref)]
        weights = CHOICE_WEIGHTS.get(ref)
        if weights:
            return self.rng.choices(values, [weights.get(v, 1) for v in values])[0]
        return self.rng.choice(values)

    # -- values --------------------------------------------------------------------------
    def bound(self, value: Any) -> Any:
        """A field's min or max, with the period's years for ``period_start``/``period_end``."""
        if value == "period_end":
            return self.period_end.year
        if value == "period_start":
            return self.period_end.year - 1
        return value

    def typed(self, spec: FieldSpec, stored: Any) -> Any:
        """A stored answer as the officer types it in the template's language."""
        if stored is None:
            return None
        if spec.type == "boolean":
            return pick(YES if stored else NO, self.language)
        if spec.type == "choice":
            return self.label(spec.choices or "", stored)
        if spec.type == "multi_choice":
            return "; ".join(self.label(spec.choices or "", v) for v in stored)
        if spec.type == "date":
            day = stored if isinstance(stored, dt.date) else dt.date.fromisoformat(stored)
            return dt.datetime(day.year, day.month, day.day)
        if spec.type == "text":
            # Generated texts are plain; a profile's texts are by language.
            text = stored if isinstance(stored, str) else pick(stored, self.language)
            return self.clip(spec, text)
        return stored

    def clip(self, spec: FieldSpec, text: str) -> str:
        """``text`` as the cell takes it: no leading formula character, at most ``max_length``."""
        # Never begin with a formula character: LibreOffice would make it a live formula.
        text = text.lstrip("=+-@ ")
        return text[: spec.max_length] if spec.max_length else text

    def text(self, spec: FieldSpec, table: str | None, row: Mapping[str, str]) -> str:
        """A sample text for a field or column, its placeholders filled from ``row`` too."""
        keys = ([f"{table}.{spec.key}"] if table else []) + [spec.key]
        for key in keys:
            if key in TEXTS:
                samples = TEXTS[key]
                options = samples.get(self.language) or samples.get("*") or samples["en"]
                return self.clip(spec, self.rng.choice(options).format(**self.words, **row))
        return self.clip(spec, pick(FALLBACK_TEXT, self.language))

    def generate(self, spec: FieldSpec, table: str | None, row: dict[str, str]) -> Any:
        """A stored value for a field or column that the profile does not give."""
        low, high = self.bound(spec.min), self.bound(spec.max)
        if spec.type == "text":
            return self.text(spec, table, row)
        if spec.type == "integer":
            low = 0 if low is None else low
            return self.rng.randint(low, max(low, min(high if high is not None else 100, 100)))
        if spec.type == "decimal":
            low = 0 if low is None else low
            top = min(high if high is not None else 1000.0, 1000.0)
            return round(self.rng.uniform(low, max(low, top)), 1)
        if spec.type == "year":
            last = self.period_end.year if high is None else min(high, self.period_end.year)
            first = max(low if low is not None else last - 1, last - 1)
            return self.rng.randint(min(first, last), last)
        if spec.type == "date":
            return self.submitted
        if spec.type == "boolean":
            return self.rng.random() < 0.7
        if spec.type == "choice":
            return self.choose(spec.choices or "")
        if spec.type == "multi_choice":
            ref = spec.choices or ""
            pool = self.plausible if ref == "@species" else [v for v, _ in self.options(ref)]
            chosen = self.rng.sample(pool, k=min(len(pool), self.rng.randint(1, 2)))
            if ref == "@species":
                row["row_species"] = ", ".join(self.species[c] for c in chosen)
            return chosen
        raise ValueError(f"{spec.key}: no synthetic value for type {spec.type}")

    def wanted(self, spec: FieldSpec, table: str | None = None) -> bool:
        """Whether the officer answers this field or column (always, if it is required)."""
        share = ANSWER_SHARE.get(f"{table}.{spec.key}", ANSWER_SHARE.get(spec.key, OPTIONAL_SHARE))
        return spec.required or self.rng.random() < share

    # -- fields and tables ---------------------------------------------------------------
    def answers(self) -> Answers:
        """The whole return: every field answered or skipped, totals summed from their tables."""
        answers: Answers = {}
        for spec in self.form.fields:
            if spec.key in TOTALS:
                continue  # computed from its table below, as an officer would
            if spec.is_table:
                table = self.keyed_table(spec) if spec.row_source else self.free_table(spec)
                if table:
                    answers[spec.key] = table
                continue
            if spec.key in self.profile:
                stored = self.profile[spec.key]
            elif spec.type == "date":
                # The required date is the submission's; others (a signature) are facts that
                # only the profile knows.
                stored = self.submitted if spec.required else None
            elif self.wanted(spec):
                stored = self.generate(spec, None, {})
            else:
                stored = None
            value = self.typed(spec, stored)
            if value is not None:
                answers[spec.key] = value
        for key, (table, column) in TOTALS.items():
            rows = answers.get(table)
            if key in {f.key for f in self.form.fields} and isinstance(rows, list):
                answers[key] = sum(r[column] for r in rows if isinstance(r.get(column), int))
        return answers

    def row(self, spec: FieldSpec, given: Mapping[str, Any], species: str | None) -> dict[str, Any]:
        """One table row: given values first, generated ones for the other columns."""
        index = self.rng.randrange(8)
        name, email = self.person(index)
        words = {
            "row_person": name,
            "row_email": email,
            "row_position": pick(POSITIONS[index % len(POSITIONS)], self.language),
            "row_species": ", ".join(self.species[c] for c in self.plausible[:1]),
        }
        cells: dict[str, Any] = {}
        quiet = False
        for column in spec.columns:
            if column.key in given:
                stored = given[column.key]
            elif species and column.choices == "@species" and column.type == "choice":
                stored = species
            elif quiet and not column.required:
                continue
            elif self.wanted(column, spec.key):
                stored = self.generate(column, spec.key, words)
            else:
                continue
            if column.type == "choice" and stored in QUIET_VALUES:
                quiet = True
            value = self.typed(column, stored)
            if value is not None:
                cells[column.key] = value
        return cells

    def free_table(self, spec: FieldSpec) -> list[dict[str, Any]]:
        """The rows of a free table: the profile's, one per plausible species, or one or two."""
        limit = spec.rows or 1
        given = self.profile.get(spec.key)
        if given is not None:
            rows = [self.row(spec, r, None) for r in given[:limit]]
        elif any(c.required and c.choices == "@species" for c in spec.columns):
            rows = [self.row(spec, {}, code) for code in self.plausible[:limit]]
        elif spec.required or self.rng.random() < 0.5:
            rows = [self.row(spec, {}, None) for _ in range(self.rng.randint(1, min(2, limit)))]
        else:
            rows = []
        return rows

    def keyed_table(self, spec: FieldSpec) -> dict[str, dict[str, Any]]:
        """A listed table's rows by row key, for the share of rows officers report on."""
        source = spec.row_source or ""
        keys = [value for value, _ in self.options(source)]
        share = ROW_SHARE.get(source, 1.0)
        chosen = [k for k in keys if self.rng.random() < share] or keys[:1]
        return {key: self.row(spec, {}, None) for key in chosen}
