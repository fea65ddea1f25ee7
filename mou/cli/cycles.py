"""``mou cycle open``."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import iso_date, print_json
from mou.settings import Settings


def cmd_cycle_open(args: argparse.Namespace, settings: Settings) -> int:
    from mou.cycles import open_cycle
    from mou.database import session_scope

    states = [s.strip() for s in args.states.split(",")] if args.states else None
    with session_scope(settings) as session:
        opened = open_cycle(session, settings, args.instrument, args.period, args.deadline, states)
        data = {
            "id": opened.cycle.id,
            "instrument": args.instrument,
            "period": opened.cycle.period,
            "deadline": opened.cycle.deadline.isoformat(),
            "created": opened.created,
            "requests": [
                {"state": r.state.code, "reference": r.reference, "language": r.language}
                for r in opened.requests
            ],
        }
    if args.json:
        print_json(data)
    else:
        verb = "opened" if opened.created else "already open, nothing new"
        print(f"cycle {data['id']} ({args.instrument} {data['period']}): {verb}")
        for request in data["requests"]:
            print(f"  {request['state']}  {request['reference']}  ({request['language']})")
    return 0


def register(commands: Any) -> None:
    cycle = commands.add_parser("cycle", help="reporting cycles")
    actions = cycle.add_subparsers(dest="cycle_command", required=True, metavar="ACTION")
    opener = actions.add_parser("open", help="open a cycle and request every state's report")
    opener.add_argument("instrument")
    opener.add_argument("--period", required=True, help="e.g. 2025-2026")
    opener.add_argument("--deadline", type=iso_date, required=True, help="YYYY-MM-DD")
    opener.add_argument("--states", help="comma-separated ISO codes (default: all)")
    opener.add_argument("--json", action="store_true")
    opener.set_defaults(handler=cmd_cycle_open)
