"""``mou user``: the Secretariat's named accounts (add, list, disable, enable, passwd).

Whoever can run ``mou`` against the database manages accounts (that is how the first admin
is made); the audit log names them as ``cli:<operating-system user>``. A password is typed
twice at a prompt that does not echo it, or read from standard input with
``--password-stdin`` (scripts); never from the command line, where other users of the
machine and the shell's history would see it.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from mou.accounts.roles import ROLES, Actor
from mou.cli.common import print_json
from mou.errors import Refused
from mou.settings import Settings


def _command_line() -> Actor:
    from mou.accounts.audit import command_line_actor

    return Actor(command_line_actor(), "admin")


def read_password(args: argparse.Namespace, name: str) -> str:
    """The new password: the first line of standard input, or typed twice at a prompt."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        raise Refused("no terminal to type the password at: pass it with --password-stdin")
    first = getpass.getpass(f"Password for {name}: ")
    if getpass.getpass("The same password again: ") != first:
        raise Refused("the two passwords differ; nothing was changed")
    return first


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.users import add_user, check_name, check_role
    from mou.store.database import session_scope

    name = check_name(args.name)  # before the password is asked for
    check_role(args.role)
    password = read_password(args, name)
    with session_scope(settings) as session:
        account = add_user(
            session,
            _command_line(),
            name,
            args.role,
            password,
            full_name=args.full_name,
            email=args.email,
        )
    if args.json:
        print_json(account.as_dict())
    else:
        print(f"account {account.name} ({account.role}) created: sign in at /dashboard/login")
    return 0


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.users import list_accounts
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        accounts = list_accounts(session)
    if args.json:
        print_json([a.as_dict() for a in accounts])
        return 0
    if not accounts:
        print("no accounts yet: create the first admin with `mou user add NAME --role admin`")
        return 0
    for a in accounts:
        state = "active" if a.active else f"disabled {a.disabled_at:%Y-%m-%d}"
        seen = f"last seen {a.last_seen_at:%Y-%m-%d %H:%M} UTC" if a.last_seen_at else "never seen"
        print(f"{a.name:<24} {a.role:<8} {state:<20} {seen}  {a.full_name or ''}".rstrip())
    return 0


def cmd_user_disable(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.users import disable_user
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        account = disable_user(session, _command_line(), args.name)
    print(f"account {account.name} is disabled; its sessions are signed out")
    return 0


def cmd_user_enable(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.users import enable_user
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        account = enable_user(session, _command_line(), args.name)
    print(f"account {account.name} is active")
    return 0


def cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from mou.accounts.users import get_account, set_password
    from mou.store.database import session_scope

    with session_scope(settings) as session:  # the account first: no prompt for nothing
        found = get_account(session, args.name)
    if found is None:
        raise Refused(f"there is no account {args.name!r} (see `mou user list`)")
    password = read_password(args, found.name)
    with session_scope(settings) as session:
        account = set_password(session, _command_line(), found.name, password)
    print(f"password of {account.name} changed; its sessions are signed out")
    return 0


def register(commands: Any) -> None:
    user = commands.add_parser("user", help="the Secretariat's named accounts")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add", help="a new account (the first admin is made here; then from the dashboard)"
    )
    add.add_argument("name", help="account name, e.g. anna.petrova")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--full-name", help="the person's name, as shown on the dashboard")
    add.add_argument("--email")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--json", action="store_true")
    add.set_defaults(handler=cmd_user_add)

    listing = actions.add_parser("list", help="every account, its role and when it was last seen")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_user_list)

    disable = actions.add_parser("disable", help="disable an account and sign it out everywhere")
    disable.add_argument("name")
    disable.set_defaults(handler=cmd_user_disable)

    enable = actions.add_parser("enable", help="enable a disabled account again")
    enable.add_argument("name")
    enable.set_defaults(handler=cmd_user_enable)

    passwd = actions.add_parser("passwd", help="set a new password (signs the account out)")
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    passwd.set_defaults(handler=cmd_user_passwd)
