"""The Secretariat's actions on the command line: ``mou cycle list|extend|exempt|close``,
``mou request resend``, ``mou review accept|return``, ``mou publish``, ``mou audit``.

The person at the terminal acts as an admin, named by their operating-system account in the
audit log. Each command prints one line (or ``--json``) and exits 0 also when there was
nothing left to do; a refusal exits 1 with the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import iso_date, print_json, record_id
from mou.i18n.languages import LANGUAGES
from mou.settings import Settings


def _actor() -> Any:
    from mou.accounts.audit import command_line_actor
    from mou.accounts.roles import Actor

    return Actor(command_line_actor(), "admin")


def _run(args: argparse.Namespace, settings: Settings, action: Any) -> int:
    from mou.service.actions import perform

    result = perform(settings, action)
    if args.json:
        print_json(result.as_dict())
    else:
        print(result.message if result.changed else f"nothing to do: {result.message}")
    return 0


def cmd_cycle_list(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import list_cycles
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        rows = list_cycles(session)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no cycle yet: open one with `mou cycle open INSTRUMENT --period ... --deadline ...`")
        return 0
    print(f"{'id':>4}  {'instrument':<14}{'period':<12}{'deadline':<12}{'status':<8}states")
    for row in rows:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in row["counts"].items() if n)
        print(
            f"{row['id']:>4}  {row['instrument']:<14}{row['period']:<12}{row['deadline']:<12}"
            f"{row['status']:<8}{row['requested']} requested" + (f": {counts}" if counts else "")
        )
    return 0


def cmd_cycle_extend(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import extend_deadline

    return _run(
        args,
        settings,
        lambda s: extend_deadline(
            s, settings, _actor(), args.cycle, args.deadline, args.reason, state=args.state
        ),
    )


def cmd_cycle_exempt(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import excuse_state

    return _run(
        args,
        settings,
        lambda s: excuse_state(s, _actor(), args.cycle, args.state, args.reason, undo=args.undo),
    )


def cmd_cycle_close(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import close_cycle

    return _run(args, settings, lambda s: close_cycle(s, _actor(), args.cycle, args.reason))


def cmd_cycle_meeting(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import set_meeting

    fields = {
        "name": args.name,
        "number": args.number,
        "place": args.place,
        "dates": args.dates,
        "agenda_item": args.agenda_item,
        "original": args.original,
        "action": args.action_requested,
    }
    for option, field in MEETING_OPTIONS.items():
        for language in LANGUAGES:
            value = getattr(args, f"{option}_{language}".replace("-", "_"))
            if value is not None:
                fields[f"{field}.{language}"] = value
    return _run(args, settings, lambda s: set_meeting(s, _actor(), args.cycle, fields, args.reason))


# The meeting's options with words in them, each also per language (--name-ru, ...).
MEETING_OPTIONS = {"name": "name", "place": "place", "dates": "dates", "action-requested": "action"}


def cmd_request_resend(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.cycles import resend_request

    return _run(
        args,
        settings,
        lambda s: resend_request(s, settings, _actor(), args.cycle, args.state, args.reason),
    )


def cmd_review_accept(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.review import accept_return

    return _run(
        args,
        settings,
        lambda s: accept_return(
            s, settings, _actor(), args.submission, args.reason, waive=args.waive or ()
        ),
    )


def cmd_review_return(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.review import return_for_correction

    return _run(
        args,
        settings,
        lambda s: return_for_correction(s, settings, _actor(), args.submission, args.comment),
    )


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from mou.secretariat.publication import publish

    wanted = (("reports", args.reports), ("national-reports", args.national))
    chosen = [kind for kind, asked in wanted if asked] or ["reports"]
    return _run(
        args,
        settings,
        lambda s: publish(s, _actor(), args.cycle, chosen, withdraw=args.withdraw),
    )


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.audit import logged_actions
    from mou.cycle.opening import get_cycle, state_by_code
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        get_cycle(session, args.cycle)
        state_id = state_by_code(session, args.state).id if args.state else None
        entries = logged_actions(session, args.cycle, state_id)
    if args.json:
        print_json([e.as_dict() for e in entries])
        return 0
    for e in entries:
        where = " ".join(
            part
            for part in (e.state or "", f"return {e.submission_id}" if e.submission_id else "")
            if part
        )
        print(
            f"{e.at.isoformat(timespec='seconds')}  {e.actor:<20} {e.action:<22} {where}"
            + (f"  ({e.reason})" if e.reason else "")
        )
    if not entries:
        print("no action recorded")
    return 0


def add_cycle_actions(actions: Any) -> None:
    """``mou cycle list|extend|exempt|close`` (``open`` is in cli/cycles.py)."""
    lister = actions.add_parser("list", help="every cycle, with how its states stand")
    lister.add_argument("--json", action="store_true")
    lister.set_defaults(handler=cmd_cycle_list)

    extend = actions.add_parser("extend", help="a later deadline for the cycle or one state")
    extend.add_argument("cycle", type=record_id)
    extend.add_argument("--deadline", type=iso_date, required=True, help="YYYY-MM-DD")
    extend.add_argument("--state", help="ISO code of one state (default: the whole cycle)")
    extend.add_argument("--reason", required=True)
    extend.add_argument("--json", action="store_true")
    extend.set_defaults(handler=cmd_cycle_extend)

    exempt = actions.add_parser("exempt", help="excuse a state from reporting in the cycle")
    exempt.add_argument("cycle", type=record_id)
    exempt.add_argument("--state", required=True)
    exempt.add_argument("--reason", required=True)
    exempt.add_argument("--undo", action="store_true", help="the state reports again")
    exempt.add_argument("--json", action="store_true")
    exempt.set_defaults(handler=cmd_cycle_exempt)

    meeting = actions.add_parser(
        "meeting", help="the meeting the progress summary serves (its cover and page 1)"
    )
    meeting.add_argument("cycle", type=record_id)
    meeting.add_argument("--name", help='e.g. "Fourth Meeting of the Signatories" ("" removes)')
    meeting.add_argument("--number", help='the meeting\'s symbol, e.g. "MOS4"')
    meeting.add_argument("--place", help='e.g. "Dushanbe, Tajikistan"')
    meeting.add_argument("--dates", help='e.g. "14-16 April 2027"')
    meeting.add_argument("--agenda-item", help='e.g. "7.1"')
    meeting.add_argument("--original", help="the language the document was written in")
    meeting.add_argument(
        "--action-requested", help='the "Action requested" paragraph (default text if unset)'
    )
    for option in MEETING_OPTIONS:
        for language in LANGUAGES:
            meeting.add_argument(
                f"--{option}-{language}",
                metavar="TEXT",
                help=f"--{option} as the summary in {language} prints it",
            )
    meeting.add_argument("--reason")
    meeting.add_argument("--json", action="store_true")
    meeting.set_defaults(handler=cmd_cycle_meeting)

    close = actions.add_parser("close", help="close the cycle and render its final reports")
    close.add_argument("cycle", type=record_id)
    close.add_argument("--reason")
    close.add_argument("--json", action="store_true")
    close.set_defaults(handler=cmd_cycle_close)


def register(commands: Any) -> None:
    request = commands.add_parser("request", help="a state's report request")
    request_actions = request.add_subparsers(dest="request_command", required=True)
    resend = request_actions.add_parser("resend", help="send the request again (same reference)")
    resend.add_argument("cycle", type=record_id)
    resend.add_argument("--state", required=True)
    resend.add_argument("--reason")
    resend.add_argument("--json", action="store_true")
    resend.set_defaults(handler=cmd_request_resend)

    review = commands.add_parser("review", help="the Secretariat's review of a return")
    review_actions = review.add_subparsers(dest="review_command", required=True)
    accept = review_actions.add_parser("accept", help="accept despite warnings (or errors)")
    accept.add_argument("submission", type=record_id, help="the return's receipt number")
    accept.add_argument("--reason", required=True)
    accept.add_argument(
        "--waive", action="append", metavar="CODE", help="an error code to accept it despite"
    )
    accept.add_argument("--json", action="store_true")
    accept.set_defaults(handler=cmd_review_accept)
    sendback = review_actions.add_parser("return", help="send back for correction")
    sendback.add_argument("submission", type=record_id, help="the return's receipt number")
    sendback.add_argument(
        "--comment",
        action="append",
        required=True,
        metavar='"FIELD_KEY: text"',
        help="a comment on a field, or general text; repeat for more",
    )
    sendback.add_argument("--json", action="store_true")
    sendback.set_defaults(handler=cmd_review_return)

    publisher = commands.add_parser("publish", help="release a cycle's PDFs on the public page")
    publisher.add_argument("cycle", type=record_id)
    publisher.add_argument("--reports", action="store_true", help="the progress summaries")
    publisher.add_argument(
        "--national-reports", dest="national", action="store_true", help="each state's report"
    )
    publisher.add_argument("--withdraw", action="store_true", help="take the release back")
    publisher.add_argument("--json", action="store_true")
    publisher.set_defaults(handler=cmd_publish)

    audit = commands.add_parser("audit", help="the log of the Secretariat's actions on a cycle")
    audit.add_argument("cycle", type=record_id)
    audit.add_argument("--state")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=cmd_audit)
