#!/usr/bin/env python3
"""One-off conversion of the CAMI Programme of Work table into catalogue data.

Source: ``shared/reference/000_ca0f89cfb6e26a43.txt`` - CMS Resolution 11.24 (French), Annex,
"Tableau 1. Programme de travail": 4 objectives, 16 issues, 121 numbered activities
(1.1.1 ... 4.3.1), each with *Responsables* and *Priorité*.

The table in the source is a mix of tab-separated cells (issue | activities | responsible |
priority) and HTML fragments (<p>, <ul>/<li>, <b>, <sup>, entities). This script:

* keeps only the lines between "Tableau 1. Programme de travail" and the table notes, drops the
  Vision/But rows, the column-header rows and the page-break rule line (``--- -- -- ---``);
* reads "Objectif N. ..." rows as objectives and "N.M. ..." issue cells as issues; a non-empty
  issue cell without a code continues the previous issue heading (2.5 is split by a page break);
* treats a line whose activity cell does not start with the next expected activity code (or a
  bold sub-heading followed by it) as the continuation of the previous table row: activity text,
  responsible and priority are joined with a space (e.g. 1.1.4 "Haute /" + "Moyenne");
* recognises an activity code only if it is the next one expected in its issue (so cross
  references such as "Voir l'activité 2.2.6" or "à partir de 1.7.3" stay text) and fails loudly
  if any code is missing or out of order;
* takes a bold fragment just before an activity code as a sub-heading (Guépard ..., Paysage de
  l'Oust-Ourt ..., Informations sur les espèces, ...); a sub-heading applies to the following
  activities of the same issue until the next sub-heading (the source gives no end marker, and
  e.g. "Guépard" heads 2.3.1 while 2.3.2-2.3.5 follow in their own rows); bold fragments inside
  an activity (2.2.1 "Clôtures", "Routes", "Voies ferrées") stay in the text as their own lines;
* gives every activity of a row the row's responsible and priority; inside a responsible cell
  "X.Y.Z. ..." notes are per-activity: starting in lower case ("plus CMS ...", "avec le
  Groupe ...") they are appended to the row's responsible for that activity, starting in upper
  case ("2.3.11. Agence gouvernementale kirghize ...") they replace it;
* text clean-up: HTML stripped, entities decoded, footnote markers (<sup>n</sup>) dropped,
  typographic apostrophes (’) normalised to ', whitespace collapsed, lower-case initial of a
  responsible cell capitalised; list items (HTML items and inline "a) ... b) ..." sequences) go
  on their own lines, joined with "\\n"; trailing period of objective titles dropped;
* maps the priority wording to a level: Haute=high, Haute / Moyenne=high_medium,
  Moyenne=medium, Moyenne / Basse=medium_low, Basse=low, per-letter priorities=mixed,
  "Selon ..."=conditional; the verbatim wording is kept in ``priority.source``.

The English texts are not produced here: the script writes ``en: null`` everywhere, unless
``--english-from`` names an already reviewed YAML of the same shape, whose ``en`` values are then
carried over by code (and by French wording for responsible/sub-heading texts).

The committed ``db/catalogue/programme_of_work.yaml`` is this script's draft plus manual work on
top: the English texts (translation by the project, not official) were added by hand and the
result was reviewed by eye against the source. The French text, structure, responsible and
priority values were not corrected by hand: the script reproduces them exactly, so re-running it
with the reviewed file as ``--english-from`` must give a byte-identical file::

    python db/catalogue/tools/convert_programme_of_work.py SOURCE -o /tmp/pow.yaml \
        --english-from db/catalogue/programme_of_work.yaml
    diff /tmp/pow.yaml db/catalogue/programme_of_work.yaml   # no output

Source quirks kept as in the source (not invented or renumbered): codes without the final dot
(1.2.1, 2.2.2, 2.3.3, 2.3.6, 2.3.11); "Plateau de Qinghai -Tibet" (2.4 heading); "Altaï-Salyan"
(2.1.1 a, i.e. Altai-Sayan); "NSLEPS" (2.1.1, footnote says NSLEP); ".." at the end of 2.2.7;
"Agences de développement" capitalised mid-list (1.5.2). No activity code is missing or doubled.
Judgement calls: 2.2.5-2.2.7 inherit the sub-heading "Dialogue politique" and 2.4.11 "Politique
en matière d'aires protégées" by the carry-forward rule above.

Python 3.11, standard library; PyYAML only for ``--english-from``.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_LABEL = (
    "CMS Resolution 11.24, Annex: Programme of Work for the Central Asian Mammals Initiative "
    "(2014-2020), Table 1"
)
HEADER_COMMENT = (
    "# CAMI Programme of Work 2014-2020 (CMS Resolution 11.24, Annex, Table 1).\n"
    "# French text as in the source; English translation by the project (not official).\n"
)

# The catalogue instrument of this programme (mou.catalogue.reference.ProgrammeOfWork.instrument).
INSTRUMENT = "cami"

TABLE_START = "Tableau 1. Programme de travail"
TABLE_END = "Notes :"

BOLD_OPEN, BOLD_CLOSE = "\x01", "\x02"
UPPER = "A-ZÀ-ÖØ-Þ"

# An activity code at the start of an activity: "1.1.1." or "1.2.1" followed by a capital.
CODE_RE = re.compile(rf"(?<![\w.])([1-4])\.(\d{{1,2}})\.(\d{{1,2}})\.?(?=\s+[{UPPER}])")
# A per-activity note inside a responsible cell: "2.3.8. plus CMS ...".
RESP_NOTE_RE = re.compile(r"(?<![\w.])([1-4]\.\d{1,2}\.\d{1,2})\.?\s+")
ISSUE_RE = re.compile(r"^([1-4])\.(\d{1,2})\.?\s+(.*)$", re.S)
OBJECTIVE_RE = re.compile(r"^Objectif\s+([1-4])\.\s*(.*)$", re.S)
LIST_MARK_RE = re.compile(r"(?:(?<=\s)|^)([a-z])\)\s")

PRIORITY_LEVELS = {
    "Haute": "high",
    "Haute / Moyenne": "high_medium",
    "Moyenne": "medium",
    "Moyenne / Basse": "medium_low",
    "Basse": "low",
}
ALLOWED_LEVELS = {*PRIORITY_LEVELS.values(), "mixed", "conditional"}


# --------------------------------------------------------------------------- text helpers


def html_to_lines(cell: str) -> list[str]:
    """Strip HTML from a cell; block elements become line breaks, <b> is kept as markers."""
    s = re.sub(r"<sup>.*?</sup>", "", cell, flags=re.S)  # footnote markers
    s = s.replace("<b>", BOLD_OPEN).replace("</b>", BOLD_CLOSE)
    s = re.sub(r"</?(?:p|li|ul|ol|br)\b[^>]*>", "\n", s)
    s = re.sub(r"<[^>]+>", "", s)
    s = html.unescape(s).replace("\u2019", "'").replace("\u00a0", " ")
    lines = []
    for line in s.split("\n"):
        line = tidy(line)
        if line.strip(BOLD_OPEN + BOLD_CLOSE + " "):
            lines.append(line)
    return lines


def tidy(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r" +([,.)])", r"\1", s)  # "GSLEP <sup>1</sup> , le" -> "GSLEP, le"
    s = re.sub(r"\( +", "(", s)
    return s


def plain(s: str) -> str:
    return tidy(s.replace(BOLD_OPEN, " ").replace(BOLD_CLOSE, " "))


def join_continuation(a: str, b: str) -> str:
    """Join two halves of a cell split by a page break."""
    if not a:
        return b
    if not b:
        return a
    return tidy(a + " " + b)


def split_inline_list(line: str) -> list[str]:
    """'... : a) x, b) y' -> ['... :', 'a) x,', 'b) y'] when the letters run a, b, c, ..."""
    cuts, expected = [], "a"
    for m in LIST_MARK_RE.finditer(line):
        if m.group(1) == expected:
            cuts.append(m.start())
            expected = chr(ord(expected) + 1)
    if len(cuts) < 2:
        return [line]
    parts, prev = [], 0
    for c in cuts:
        if c > prev:
            parts.append(line[prev:c].strip())
        prev = c
    parts.append(line[prev:].strip())
    return [p for p in parts if p]


def capitalise(s: str) -> str:
    return s[:1].upper() + s[1:] if s else s


def priority_level(source: str) -> str:
    if source in PRIORITY_LEVELS:
        return PRIORITY_LEVELS[source]
    if source.startswith("Selon"):
        return "conditional"
    if re.search(r"\([a-z](?:, [a-z])*\)", source):
        return "mixed"
    raise ValueError(f"unknown priority wording: {source!r}")


# --------------------------------------------------------------------------- model


@dataclass
class Activity:
    code: str
    objective: str
    issue: str
    subheading: str | None
    lines: list[str] = field(default_factory=list)
    responsible: str = ""
    priority: str = ""


@dataclass
class Row:
    activities: list[Activity] = field(default_factory=list)
    responsible: str = ""
    priority: str = ""


@dataclass
class Table:
    objectives: dict[str, str] = field(default_factory=dict)
    issues: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (objective, title)
    activities: list[Activity] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def table_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if TABLE_START in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(TABLE_END))
    return lines[start + 1 : end]


def tokens(cell_lines: list[str]):
    """Yield ('bold', text), ('code', code, text-after) and ('text', text) per line."""
    for line in cell_lines:
        yield ("line",)
        pos = 0
        for m in re.finditer(re.escape(BOLD_OPEN) + r"(.*?)" + re.escape(BOLD_CLOSE), line):
            if line[pos : m.start()].strip():
                yield ("text", line[pos : m.start()])
            yield ("bold", plain(m.group(1)))
            pos = m.end()
        if line[pos:].strip():
            yield ("text", line[pos:])


def parse(text: str) -> Table:
    t = Table()
    objective = issue = None
    subheading: str | None = None
    current: Activity | None = None
    row: Row | None = None

    def expected_code() -> str | None:
        if issue is None:
            return None
        n = int(current.code.split(".")[2]) + 1 if current and current.issue == issue else 1
        return f"{issue}.{n}"

    for raw in table_lines(text):
        if not raw.strip() or re.fullmatch(r"[-\s]+", raw):
            continue
        cells = [*raw.split("\t"), "", "", ""][:4]
        first = plain(" ".join(html_to_lines(cells[0])))
        if first.startswith(("Vision :", "But :")):
            continue
        if m := OBJECTIVE_RE.match(first):
            objective = m.group(1)
            t.objectives[objective] = m.group(2).rstrip(".").strip()
            issue, current, row, subheading = None, None, None, None
            continue
        if plain(" ".join(html_to_lines(cells[1]))) == "Activités":
            continue
        if m := ISSUE_RE.match(first):
            if m.group(1) != objective:
                raise ValueError(f"issue {first!r} outside objective {objective}")
            issue = f"{m.group(1)}.{m.group(2)}"
            t.issues[issue] = (objective, m.group(3).strip())
            subheading = None
        elif first:  # issue heading continued after a page break
            obj, title = t.issues[issue]
            t.issues[issue] = (obj, join_continuation(title, first))

        # ---- activity cell
        new_row = None
        pending_bold: list[str] = []
        first_line_of_cell = True
        continued_row = False
        new_line = True
        for tok in tokens(html_to_lines(cells[1])):
            if tok[0] == "line":
                new_line = True
                continue
            if tok[0] == "bold":
                pending_bold.append(tok[1])
                continue
            s = tok[1]
            # split the fragment at activity codes (only the next expected code counts)
            while s.strip():
                exp = expected_code()
                m = None
                for cm in CODE_RE.finditer(s):
                    if ".".join(cm.groups()) == exp:
                        m = cm
                        break
                before = s[: m.start()] if m else s
                if before.strip():
                    if pending_bold:  # bold inside an activity: its own line
                        if current is None:
                            raise ValueError(f"bold text before any activity: {pending_bold}")
                        current.lines.extend(pending_bold)
                        pending_bold = []
                        new_line = True
                    if current is None:
                        raise ValueError(f"text before any activity: {before!r}")
                    frag = tidy(before)
                    continuation = first_line_of_cell and new_row is None
                    if continuation:
                        continued_row = True
                    if continuation and current.lines and not LIST_MARK_RE.match(frag):
                        current.lines[-1] = join_continuation(current.lines[-1], frag)
                    elif new_line or not current.lines:
                        current.lines.append(frag)
                    else:
                        current.lines[-1] = join_continuation(current.lines[-1], frag)
                    new_line = False
                first_line_of_cell = False
                if not m:
                    break
                if pending_bold:
                    subheading = plain(" ".join(pending_bold))
                    pending_bold = []
                if new_row is None:
                    if continued_row:  # codes after continued text stay in that row (2.5.2-4)
                        new_row = row
                    else:
                        new_row = Row()
                        t.rows.append(new_row)
                        row = new_row
                current = Activity(exp, objective, issue, subheading)
                t.activities.append(current)
                row.activities.append(current)
                new_line = True
                s = s[m.end() :]
        if pending_bold:
            raise ValueError(f"dangling bold text: {pending_bold}")

        # ---- responsible and priority cells (new row, or continuation of the previous row)
        resp = plain(" ".join(html_to_lines(cells[2])))
        prio = plain(" ".join(html_to_lines(cells[3])))
        if row is None:
            if resp or prio:
                raise ValueError(f"responsible/priority without activity: {raw!r}")
            continue
        row.responsible = join_continuation(row.responsible, resp)
        row.priority = join_continuation(row.priority, prio)

    # ---- distribute row-level responsible/priority to the activities
    for r in t.rows:
        parts = RESP_NOTE_RE.split(r.responsible)
        base = capitalise(parts[0].strip().rstrip(",").strip())
        notes = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=True))
        codes = {a.code for a in r.activities}
        for code in notes:
            if code not in codes:
                raise ValueError(f"responsible note for {code} outside its row")
        for a in r.activities:
            note = notes.get(a.code)
            if note is None:
                a.responsible = base
            elif note[:1].islower():
                a.responsible = f"{base}, {note}"
            else:
                a.responsible = note
            a.priority = r.priority
    return t


def activity_text(a: Activity) -> str:
    out: list[str] = []
    for line in a.lines:
        out.extend(split_inline_list(line))
    return "\n".join(out)


# --------------------------------------------------------------------------- output


def q(s: str | None) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return "null" if s is None else json.dumps(s, ensure_ascii=False)


def fr_en(fr: str, en: str | None) -> str:
    return f"{{fr: {q(fr)}, en: {q(en)}}}"


def load_english(path: Path | None) -> dict:
    if path is None:
        return {}
    import yaml  # only needed here

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    en: dict = {"objective": {}, "issue": {}, "text": {}, "resp": {}, "sub": {}}
    for o in data.get("objectives", []):
        en["objective"][o["code"]] = o["title"]["en"]
    for i in data.get("issues", []):
        en["issue"][i["code"]] = i["title"]["en"]
    for a in data.get("activities", []):
        en["text"][a["code"]] = a["text"]["en"]
        en["resp"][a["responsible"]["fr"]] = a["responsible"]["en"]
        if a.get("subheading"):
            en["sub"][a["subheading"]["fr"]] = a["subheading"]["en"]
    return en


def render(t: Table, en: dict) -> str:
    g = lambda kind, key: en.get(kind, {}).get(key)  # noqa: E731
    out = [
        HEADER_COMMENT,
        f"source: {q(SOURCE_LABEL)}\n",
        f"instrument: {q(INSTRUMENT)}\n",
        "objectives:\n",
    ]
    for code, title in t.objectives.items():
        out.append(f"  - code: {q(code)}\n    title: {fr_en(title, g('objective', code))}\n")
    out.append("issues:\n")
    for code, (obj, title) in t.issues.items():
        out.append(
            f"  - code: {q(code)}\n    objective: {q(obj)}\n"
            f"    title: {fr_en(title, g('issue', code))}\n"
        )
    out.append("activities:\n")
    for a in t.activities:
        sub = "null" if a.subheading is None else fr_en(a.subheading, g("sub", a.subheading))
        out.append(
            f"  - code: {q(a.code)}\n"
            f"    objective: {q(a.objective)}\n"
            f"    issue: {q(a.issue)}\n"
            f"    subheading: {sub}\n"
            f"    text:\n"
            f"      fr: {q(activity_text(a))}\n"
            f"      en: {q(g('text', a.code))}\n"
            f"    responsible:\n"
            f"      fr: {q(a.responsible)}\n"
            f"      en: {q(g('resp', a.responsible))}\n"
            f"    priority:\n"
            f"      level: {priority_level(a.priority)}\n"
            f"      source: {q(a.priority)}\n"
        )
    return "".join(out)


def check(t: Table) -> None:
    codes = [a.code for a in t.activities]
    key = lambda c: tuple(int(p) for p in c.split("."))  # noqa: E731
    assert len(codes) == len(set(codes)), "duplicate activity codes"
    assert codes == sorted(codes, key=key), "activity codes out of order"
    assert len(t.objectives) == 4, t.objectives
    for a in t.activities:
        assert a.issue in t.issues and t.issues[a.issue][0] == a.objective, a.code
        assert a.lines and a.responsible and a.priority, a.code
        assert priority_level(a.priority) in ALLOWED_LEVELS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="000_ca0f89cfb6e26a43.txt")
    p.add_argument("-o", "--output", type=Path, help="draft YAML (default: stdout)")
    p.add_argument("--english-from", type=Path, help="reviewed YAML to take the en texts from")
    args = p.parse_args(argv)

    t = parse(args.source.read_text(encoding="utf-8"))
    check(t)
    doc = render(t, load_english(args.english_from))
    if args.output:
        args.output.write_text(doc, encoding="utf-8")
    else:
        sys.stdout.write(doc)
    per_obj = {o: sum(a.objective == o for a in t.activities) for o in t.objectives}
    print(
        f"{len(t.objectives)} objectives, {len(t.issues)} issues, "
        f"{len(t.activities)} activities {per_obj}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
