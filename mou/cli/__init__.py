"""The ``mou`` command. Exit status: 0 success, 1 input refused, 2 wrong usage."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from mou.cli import contacts as cli_contacts
from mou.cli import cycles as cli_cycles
from mou.cli import forms as cli_forms
from mou.cli import mailbox as cli_mailbox
from mou.cli import outbox as cli_outbox
from mou.cli import reports as cli_reports
from mou.cli import secretariat as cli_secretariat
from mou.cli import users as cli_users
from mou.cli.common import iso_date, print_json, terminal_progress
from mou.errors import Refused
from mou.settings import Settings, get_settings, settings_problem
from mou.store.database import database_problem

Handler = Callable[[argparse.Namespace, Settings], int]


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.bootstrap import prepare_database

    summary = prepare_database(settings)
    if args.json:
        print_json(summary)
    else:
        print(
            f"database ready: {summary['instruments']} instruments, {summary['states']} range "
            f"states, {summary['species']} species, {summary['activities']} activities, "
            f"{summary['contacts']} contacts"
        )
        for what, keys in (
            ("seeded from the catalogue", summary["contacts_added"]),
            ("disabled (no longer in db/catalogue/authorities.yaml)", summary["contacts_disabled"]),
            ("enabled again (listed again in the catalogue)", summary["contacts_enabled"]),
        ):
            if keys:
                listed = ", ".join(keys) if len(keys) <= 10 else f"{keys[0]} ... {keys[-1]}"
                print(f"contacts {what}: {len(keys)} ({listed})")
    return 0


def cmd_catalogue(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.reference import describe
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        data = describe(session)
    if args.json:
        print_json(data)
        return 0
    for instrument in data["instruments"]:
        print(f"{instrument['code']}: {instrument['short_name']['en']}")
        print(f"  range states: {', '.join(instrument['range_states'])}")
        print(f"  signatories:  {', '.join(instrument['signatories']) or '-'}")
        print(f"  species:      {len(instrument['species'])}")
    print(f"range states: {len(data['range_states'])}")
    for state in data["range_states"]:
        print(f"  {state['code']}  {state['name']['en']}")
    print(f"species: {len(data['species'])}")
    for species in data["species"]:
        print(f"  {species['code']:<22} {species['scientific_name']}")
    print(f"programme-of-work activities: {len(data['activities'])}")
    return 0


def _serve(settings: Settings) -> int:
    from mou.portal.server import serve_portal_in_thread
    from mou.service.serve import serve

    return serve(settings, portal=serve_portal_in_thread)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """A warm intake worker: Prefect task workers for the drains, until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from mou.catalogue.bootstrap import prepare_database
    from mou.service.tasks import run_workers

    if not os.environ.get("PREFECT_API_URL"):
        raise Refused(
            "mou worker serves the Prefect API's background tasks: set PREFECT_API_URL (the "
            "server all receivers and workers use); `mou serve` runs one in-process"
        )
    if args.limit < 1:
        raise Refused("--limit must be at least 1")
    prepare_database(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    print(
        f"mou worker: {args.limit} decision drains at once and one slot for receipts and "
        f"renders, tasks of {os.environ['PREFECT_API_URL']}; until Ctrl-C",
        flush=True,
    )
    try:
        return run_workers(settings, args.limit, stop)
    except KeyboardInterrupt:
        stop.set()
        return 130


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from mou.demo.run import run_demo

    with terminal_progress("demo", enabled=not args.json) as progress:
        report = run_demo(settings, today=args.today, progress=progress, workers=args.workers)
    if args.json:
        print_json(report.as_dict())
    else:
        print("\n".join(report.lines()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mou", description="Progress reporting for the Bukhara Deer MoU and CAMI."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="database migrations and catalogue")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply migrations and load the catalogue")
    upgrade.add_argument("--json", action="store_true")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    catalogue = commands.add_parser("catalogue", help="instruments, states, species, activities")
    catalogue.add_argument("--json", action="store_true")
    catalogue.set_defaults(handler=cmd_catalogue)

    serve = commands.add_parser("serve", help="run the service until Ctrl-C")
    serve.set_defaults(handler=lambda args, settings: _serve(settings))

    worker = commands.add_parser(
        "worker", help="a warm intake worker (distributed mode; PREFECT_API_URL set)"
    )
    worker.add_argument(
        "--limit", type=int, default=2, help="decision drains at once (default 2: one per core)"
    )
    worker.set_defaults(handler=cmd_worker)

    demo = commands.add_parser("demo", help="one whole cycle of each instrument, synthetic returns")
    demo.add_argument("--today", type=iso_date, help="the day the cycles open (default: today)")
    demo.add_argument("--workers", type=int, help="worker processes (default: CPUs, at most 4)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    for module in _COMMAND_MODULES:
        module.register(commands)
    return parser


# Each room of the service adds its own sub-commands.
_COMMAND_MODULES: list[Any] = [
    cli_forms,
    cli_cycles,
    cli_reports,
    cli_outbox,
    cli_secretariat,
    cli_contacts,
    cli_mailbox,
    cli_users,
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"mou: invalid settings: {settings_problem(exc)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # e.g. var/secret unreadable or damaged
        print(f"mou: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return args.handler(args, settings)
    except Refused as exc:
        print(f"mou: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        problem = database_problem(exc, settings)
        if problem is None:
            return _internal_error(exc)
        print(f"mou: {problem}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head`: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("mou: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    """A fault of ours: one line for the person, the traceback only when asked for."""
    if os.environ.get("MOU_DEBUG"):
        traceback.print_exception(exc)
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    print(
        f"mou: internal error ({type(exc).__name__}{': ' + detail if detail else ''}); "
        "the step did not complete. Run again with MOU_DEBUG=1 for the details "
        "and report it to the Secretariat's technical team.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
