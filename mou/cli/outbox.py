"""``mou outbox``: the mail that did not go out."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import print_json
from mou.settings import Settings


def cmd_outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    from mou.errors import Refused
    from mou.mail.delivery import deliver_pending
    from mou.mail.outbox import retry_failed
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        keys = retry_failed(session, args.key)
    if args.key and not keys:
        raise Refused(f"no failed message with key {args.key!r}: see `mou status CYCLE`")
    report = deliver_pending(settings)
    data = {
        "requeued": keys,
        "sent": report.sent,
        "deferred": report.deferred,
        "failed": report.failed,
        "still_pending": report.still_pending,
    }
    if args.json:
        print_json(data)
    else:
        print(
            f"requeued {len(keys)}: sent {report.sent}, failed again {report.failed}, "
            f"retrying later {report.deferred}"
        )
    return 0


def register(commands: Any) -> None:
    outbox = commands.add_parser("outbox", help="the mail that did not go out")
    actions = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    retry = actions.add_parser(
        "retry",
        help="send failed mail of the last 30 days and of open cycles again (e.g. after the "
        "relay was down for too long)",
    )
    retry.add_argument("--key", help="only this message (as `mou status` shows it)")
    retry.add_argument("--json", action="store_true")
    retry.set_defaults(handler=cmd_outbox_retry)
