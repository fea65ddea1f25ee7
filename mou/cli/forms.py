"""``mou form show``, ``mou template`` and ``mou submit``."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import language, print_json, read_input_file, write_output_file
from mou.errors import Refused
from mou.settings import Settings


def cmd_form_show(args: argparse.Namespace, settings: Settings) -> int:
    from mou.forms import load_form

    form = load_form(settings.forms_dir, args.instrument)
    if args.json:
        print_json(form.model_dump(mode="json"))
        return 0
    lang = args.lang
    print(f"{form.title(lang)}\n{form.form_id}, version {form.version}")
    for section in form.sections:
        print(f"\n[{section.key}] {section.title(lang)}")
        for spec in section.fields:
            flags = " ".join(
                flag
                for flag, on in (("required", spec.required), ("carried", spec.carry_forward))
                if on
            )
            extra = f" <{spec.choices}>" if spec.choices else ""
            print(f"  {spec.key:<32} {spec.type:<12}{extra} {flags}".rstrip())
            print(f"      {spec.label(lang)}")
            for column in spec.columns:
                ctype = column.type + (f" <{column.choices}>" if column.choices else "")
                print(f"      - {column.key:<26} {ctype}{' required' if column.required else ''}")
    return 0


def cmd_template(args: argparse.Namespace, settings: Settings) -> int:
    from mou.cycle.context import template_for
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        data = template_for(
            session, settings, args.cycle, args.state, args.lang, instrument_code=args.instrument
        )
    write_output_file(args.output, data)
    print(f"template for {args.state.upper()}, cycle {args.cycle}, {args.lang}: {args.output}")
    return 0


def outcome_as_dict(outcome: Any, created: bool) -> dict[str, Any]:
    return {
        "submission": outcome.submission_id,
        "new": created,
        "status": outcome.status,
        "state": outcome.state,
        "cycle": outcome.cycle_id,
        "version": outcome.version,
        "superseded": outcome.superseded_id,
        "errors": [_issue(i) for i in outcome.issues if i.severity == "error"],
        "warnings": [_issue(i) for i in outcome.issues if i.severity == "warning"],
    }


def _issue(issue: Any) -> dict[str, Any]:
    return {"code": issue.code, "sheet": issue.sheet, "cell": issue.cell, "message": issue.message}


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    from mou.service.protocol import INGEST_INLINE, process_submission, receive_file

    data = read_input_file(args.file, settings.max_kept_bytes)
    if len(data) > settings.max_kept_bytes:
        raise Refused(
            f"{args.file} is over {settings.max_kept_bytes // 2**20} MB, far beyond the "
            f"{settings.max_upload_bytes // 2**20} MB a return may have: nothing was recorded. "
            "Save the workbook as .xlsx without images and send it again."
        )
    # Decided here, so the sender sees the outcome; no deployment run is needed for it.
    submission_id, created = receive_file(
        settings,
        data,
        filename=args.file,
        sender=args.sender,
        state=args.state,
        ingest=INGEST_INLINE,
    )
    outcome = process_submission(settings, submission_id)
    result = outcome_as_dict(outcome, created)
    if args.json:
        print_json(result)
    else:
        again = "" if created else " (these exact bytes were received before)"
        print(f"submission {outcome.submission_id}: {outcome.status.upper()}{again}")
        if outcome.state:
            where = f"  state {outcome.state}, cycle {outcome.cycle_id}"
            if outcome.version:
                where += f", version {outcome.version}"
            elif outcome.status == "accepted":  # decided after a later return of its state
                where += ", no version: a return received after it counts instead"
            print(where)
        for kind in ("errors", "warnings"):
            for issue in result[kind]:
                print(f"  {kind[:-1]}: {issue['message']}")
    return 0 if outcome.status == "accepted" else 1


def register(commands: Any) -> None:
    form = commands.add_parser("form", help="form specifications")
    form_commands = form.add_subparsers(dest="form_command", required=True, metavar="ACTION")
    show = form_commands.add_parser("show", help="print an instrument's form")
    show.add_argument("instrument")
    show.add_argument("--lang", type=language, default="en")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_form_show)

    template = commands.add_parser("template", help="build a state's workbook for a cycle")
    template.add_argument("instrument")
    template.add_argument("state")
    template.add_argument("--cycle", type=int, required=True)
    template.add_argument("--lang", type=language, required=True)
    template.add_argument("-o", "--output", required=True)
    template.set_defaults(handler=cmd_template)

    submit = commands.add_parser("submit", help="record, read and check a returned workbook")
    submit.add_argument("file")
    submit.add_argument("--sender", help="the sender's email address")
    submit.add_argument("--state", help="the state the file is sent for (ISO code)")
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(handler=cmd_submit)
