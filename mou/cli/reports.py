"""``mou status``, ``mou report`` and ``mou export``."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import language, print_json, write_output_file
from mou.errors import Refused
from mou.settings import Settings


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from mou.cycle.standing import cycle_status
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        data = cycle_status(session, args.cycle)
    if args.json:
        print_json(data)
        return 0
    print(
        f"cycle {data['cycle']}: {data['instrument']} {data['period']}, deadline {data['deadline']}"
    )
    print(
        f"{'state':<6}{'request':<12}{'reminders':<22}{'returns':<9}{'outcome':<24}{'on time':<8}"
        "deadline"
    )
    for s in data["states"]:
        requested = (s["requested"] or s["request_email"] or "-")[:10]
        reminders = ",".join(s["reminders"]) or "-"
        on_time = {True: "yes", False: "late", None: "-"}[s["on_time"]]
        outcome = s["outcome"]
        if s["latest"]:
            outcome += f" v{s['latest']['version']}" if s["latest"]["version"] else ""
        deadline = s["deadline"] + (" (extended)" if s["extended"] else "")
        print(
            f"{s['state']:<6}{requested:<12}{reminders:<22}{s['submissions']:<9}{outcome:<24}"
            f"{on_time:<8}{deadline}"
        )
    summary = ", ".join(f"{k} {v}" for k, v in data["summary"].items() if v)
    print(summary)
    problems = [(s["state"], problem) for s in data["states"] for problem in s["mail_problems"]]
    problems += [("cycle", problem) for problem in data["mail_problems"]]
    problems += [("no cycle", problem) for problem in data["mail_problems_outside_cycles"]]
    for where, problem in problems:
        print(f"{where}: {problem['kind']} email {problem['status']}: {problem['error']}")
    statuses = {problem["status"] for _, problem in problems}
    if statuses & {"failed", "partial"}:
        print("`mou outbox retry` sends the failed ones again once the cause is mended.")
    if "bounced" in statuses:
        print("Bounced mail was returned by the recipient's server: correct the address first.")
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from mou.reporting.consolidation import consolidate
    from mou.reporting.progress_summary import render_progress_summary
    from mou.store.database import session_scope

    if not args.output.lower().endswith(".pdf"):
        raise Refused(f"{args.output}: the report is a PDF; give a file name ending in .pdf")
    with session_scope(settings) as session:
        consolidated = consolidate(session, args.cycle, forms_dir=settings.forms_dir)
    write_output_file(args.output, render_progress_summary(consolidated, args.lang, settings))
    print(f"progress summary of cycle {args.cycle} ({args.lang}): {args.output}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from mou.reporting.export import export_cycle
    from mou.store.database import session_scope

    path = Path(args.output)
    if path.suffix.lower() not in (".xlsx", ".csv", ".json"):
        raise Refused(f"{args.output}: export to a file ending in .xlsx, .csv or .json")
    with session_scope(settings) as session:
        export_cycle(session, args.cycle, path, forms_dir=settings.forms_dir)
    print(f"cycle {args.cycle} exported: {path}")
    return 0


def register(commands: Any) -> None:
    status = commands.add_parser("status", help="where a cycle stands, state by state")
    status.add_argument("cycle", type=int)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    report = commands.add_parser("report", help="render a cycle's progress summary (PDF)")
    report.add_argument("cycle", type=int)
    report.add_argument("--lang", type=language, default="en")
    report.add_argument("-o", "--output", required=True)
    report.set_defaults(handler=cmd_report)

    export = commands.add_parser("export", help="export a cycle's answers (.xlsx/.csv/.json)")
    export.add_argument("cycle", type=int)
    export.add_argument("-o", "--output", required=True)
    export.set_defaults(handler=cmd_export)
