"""``mou cycle open`` and ``mou sweep``."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import iso_date, print_json, terminal_progress
from mou.cli.secretariat import add_cycle_actions
from mou.settings import Settings


def cmd_cycle_open(args: argparse.Namespace, settings: Settings) -> int:
    from mou.service.protocol import open_and_dispatch

    states = [s.strip() for s in args.states.split(",")] if args.states else None
    with terminal_progress("dispatching requests", enabled=not args.json) as progress:
        opening = open_and_dispatch(
            settings, args.instrument, args.period, args.deadline, states, progress=progress
        )
    delivery = opening.delivery
    data = {
        "id": opening.cycle_id,
        "instrument": args.instrument,
        "period": opening.period,
        "deadline": opening.deadline.isoformat(),
        "created": opening.created,
        "dispatched": opening.dispatched,
        "already_dispatched": opening.already,
        "emails_sent": delivery.sent if delivery else 0,
        "emails_pending": delivery.still_pending if delivery else 0,
    }
    if args.json:
        print_json(data)
        return 0
    if opening.created:
        print(f"cycle {opening.cycle_id} opened: {args.instrument} {opening.period}")
    else:
        print(f"cycle {opening.cycle_id} ({args.instrument} {opening.period}) was already open")
    if opening.dispatched:
        print(f"  requests dispatched now: {', '.join(opening.dispatched)}")
    if opening.already:
        print(f"  requests sent before, nothing new sent: {', '.join(opening.already)}")
    print(f"  emails sent {data['emails_sent']}, still pending {data['emails_pending']}")
    return 0


def cmd_sweep(args: argparse.Namespace, settings: Settings) -> int:
    import datetime as dt

    from mou.service.protocol import sweep

    with terminal_progress("sweeping", enabled=not args.json) as progress:
        report = sweep(
            settings, older_than=dt.timedelta(seconds=args.older_than), progress=progress
        )
    data = {
        "ingested": report.ingested,
        "receipts": report.receipts,
        "emails_sent": report.delivery.sent if report.delivery else 0,
        "emails_pending": report.delivery.still_pending if report.delivery else 0,
    }
    if args.json:
        print_json(data)
    else:
        print(
            f"ingested {len(report.ingested)}, receipts {len(report.receipts)}, "
            f"emails sent {data['emails_sent']}, still pending {data['emails_pending']}"
        )
    return 0


def register(commands: Any) -> None:
    sweeper = commands.add_parser(
        "sweep", help="finish undecided submissions, missing receipts and pending emails"
    )
    sweeper.add_argument("--older-than", type=float, default=30, help="seconds (default 30)")
    sweeper.add_argument("--json", action="store_true")
    sweeper.set_defaults(handler=cmd_sweep)

    cycle = commands.add_parser("cycle", help="reporting cycles")
    actions = cycle.add_subparsers(dest="cycle_command", required=True, metavar="ACTION")
    opener = actions.add_parser("open", help="open a cycle and request every state's report")
    opener.add_argument("instrument")
    opener.add_argument("--period", required=True, help="e.g. 2025-2026")
    opener.add_argument("--deadline", type=iso_date, required=True, help="YYYY-MM-DD")
    opener.add_argument("--states", help="comma-separated ISO codes (default: all)")
    opener.add_argument("--json", action="store_true")
    opener.set_defaults(handler=cmd_cycle_open)
    add_cycle_actions(actions)
