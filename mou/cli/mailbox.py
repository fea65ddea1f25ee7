"""``mou mailbox poll``: one pass over the Secretariat's mailbox."""

from __future__ import annotations

import argparse
from typing import Any

from mou.cli.common import print_json
from mou.errors import Refused
from mou.settings import Settings


def cmd_mailbox_poll(args: argparse.Namespace, settings: Settings) -> int:
    from mou.mailbox.imap import MailboxUnavailable
    from mou.service.mailbox import poll_mailbox

    if not settings.imap_host:
        raise Refused(
            "no mailbox is configured: set MOU_IMAP_HOST, MOU_IMAP_USER and MOU_IMAP_PASSWORD "
            "(and MOU_IMAP_SECURITY, MOU_IMAP_PORT, MOU_IMAP_FOLDER if need be)"
        )
    try:
        report = poll_mailbox(settings)
    except MailboxUnavailable as exc:
        raise Refused(f"{exc}. Check the MOU_IMAP_* settings.") from exc
    if args.json:
        print_json(report.as_dict())
        return 0
    print(
        f"mailbox {settings.imap_folder}: {report.seen} messages, {len(report.handled)} handled, "
        f"{len(report.submissions)} returns recorded, {report.already} handled before"
    )
    for item in report.handled:
        print(f"  message {item['mail']}: {item['kind']}: {item['note']}")
    for line in report.left:
        print(f"  left in the folder: {line}")
    return 0


def register(commands: Any) -> None:
    mailbox = commands.add_parser("mailbox", help="the Secretariat's mailbox (MOU_IMAP_*)")
    actions = mailbox.add_subparsers(dest="mailbox_command", required=True, metavar="ACTION")
    poll = actions.add_parser(
        "poll", help="one pass: returns recorded and decided, other mail answered, bounces marked"
    )
    poll.add_argument("--json", action="store_true")
    poll.set_defaults(handler=cmd_mailbox_poll)
