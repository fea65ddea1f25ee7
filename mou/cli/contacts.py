"""``mou contacts``: the address book the Secretariat edits (list, set, add, disable, enable,
history). The command line acts as an admin named after the operating-system account."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mou.cli.common import language, print_json
from mou.settings import Settings

_KINDS = ("foreign_affairs", "focal_ministry", "focal_point")


def _actor() -> Any:
    from mou.accounts.audit import command_line_actor
    from mou.accounts.roles import Actor

    return Actor(command_line_actor(), "admin")


def _instruments(text: str | None) -> Any:
    """``--instruments``: "all" (every instrument the state takes part in) or a list."""
    from mou.catalogue.contact_edits import KEEP

    if text is None:
        return KEEP
    if text.strip().lower() == "all":
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def cmd_contacts_list(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.contacts import list_contacts
    from mou.store.database import session_scope

    enabled = {"enabled": True, "disabled": False}.get(args.only or "")
    with session_scope(settings) as session:
        contacts = list_contacts(
            session,
            state=args.state,
            kind=args.kind,
            instrument=args.instrument,
            species=args.species,
            enabled=enabled,
        )
    if args.json:
        print_json([c.as_dict() for c in contacts])
        return 0
    print(
        f"{'KEY':<20} {'ST':<3} {'KIND':<15} {'SPECIES':<14} {'EMAIL':<34} {'LANG':<4} "
        f"{'ENABLED':<8} {'LAST CHANGE':<30} NAME"
    )
    for c in contacts:
        last = f"{c.last_change.at:%Y-%m-%d} {c.last_change.actor}"[:30] if c.last_change else "-"
        print(
            f"{c.key:<20} {c.state:<3} {c.kind:<15} {c.species or '-':<14} {c.email:<34} "
            f"{c.language:<4} {'yes' if c.enabled else 'no':<8} {last:<30} {c.name.get('en', '')}"
        )
    print(f"{len(contacts)} contacts")
    return 0


def _report(edit: Any, args: argparse.Namespace, done: str) -> int:
    if args.json:
        print_json({"key": edit.key, "changes": [c.as_dict() for c in edit.changes]})
    elif not edit.changed:
        print(f"{edit.key}: nothing to change")
    else:
        print(f"{edit.key}: {done} ({', '.join(edit.fields)})")
    return 0


def _names(args: argparse.Namespace) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for lang in ("en", "ru", "fr"):
        value = getattr(args, f"name_{lang}")
        if value is not None:
            names[lang] = value
    if args.name is not None:
        names[args.name_lang or "en"] = args.name
    return names


def cmd_contacts_set(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.contact_edits import KEEP, set_contact
    from mou.store.database import session_scope

    given = {
        "email": args.email if args.email is not None else KEEP,
        "language": args.language if args.language is not None else KEEP,
        "address": args.address if args.address is not None else KEEP,
        "person_name": args.person if args.person is not None else KEEP,
        "person_title": args.person_title if args.person_title is not None else KEEP,
        "instruments": _instruments(args.instruments),
    }
    names = _names(args)
    addresses = {
        lang: value
        for lang, value in (("ru", args.address_ru), ("fr", args.address_fr))
        if value is not None
    }
    if not names and not addresses and all(value is KEEP for value in given.values()):
        print(
            "mou contacts set: nothing to change: give --email, --name, --language, --address, "
            "--person, --person-title or --instruments",
            file=sys.stderr,
        )
        return 2
    with session_scope(settings) as session:
        edit = set_contact(
            session,
            _actor(),
            args.key,
            names=names,
            addresses=addresses,
            reason=args.reason,
            **given,
        )
    return _report(edit, args, "changed")


def cmd_contacts_add(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.contact_edits import add_contact
    from mou.store.database import session_scope

    names = _names(args)
    with session_scope(settings) as session:
        edit = add_contact(
            session,
            _actor(),
            args.key,
            state=args.state,
            kind=args.kind,
            email=args.email,
            name={lang: text or "" for lang, text in names.items()},
            language=args.language,
            species=args.species,
            address=args.address,
            person_name=args.person,
            person_title=args.person_title,
            instruments=None if args.instruments is None else _instruments(args.instruments),
            reason=args.reason,
        )
    return _report(edit, args, "added")


def _cmd_enable(enabled: bool) -> Any:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from mou.catalogue.contact_edits import disable_contact, enable_contact
        from mou.store.database import session_scope

        action = enable_contact if enabled else disable_contact
        with session_scope(settings) as session:
            edit = action(session, _actor(), args.key, reason=args.reason)
        if not edit.changed and not args.json:
            print(f"{args.key}: already {'enabled' if enabled else 'disabled'}")
            return 0
        return _report(edit, args, "enabled" if enabled else "disabled")

    return handler


def cmd_contacts_history(args: argparse.Namespace, settings: Settings) -> int:
    from mou.catalogue.contacts import contact_history
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        changes = contact_history(session, args.key)
    if args.json:
        print_json([c.as_dict() for c in changes])
        return 0
    if not changes:
        print(f"{args.key}: no change since it was seeded from the catalogue")
        return 0
    for c in changes:
        why = f"  ({c.reason})" if c.reason else ""
        print(
            f"{c.at:%Y-%m-%d %H:%M} UTC  {c.actor:<20} {c.field:<12} "
            f"{_shown(c.old)} -> {_shown(c.new)}{why}"
        )
    return 0


def _fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="the name (in English unless --name-lang says otherwise)")
    parser.add_argument("--name-lang", type=language, help="the language --name is written in")
    parser.add_argument("--name-en", help="the name in English")
    parser.add_argument("--name-ru", help='the name in Russian ("" removes it)')
    parser.add_argument("--name-fr", help='the name in French ("" removes it)')
    parser.add_argument("--language", type=language, help="language of correspondence")
    parser.add_argument("--address", help='postal address ("" clears it)')
    parser.add_argument("--person", help='the person\'s name, for a focal point ("" clears it)')
    parser.add_argument("--person-title", help='the person\'s title ("" clears it)')
    parser.add_argument(
        "--instruments",
        help='comma-separated instrument codes, or "all" (every instrument the state takes '
        "part in)",
    )
    parser.add_argument("--reason", help="why (kept in the history and the audit log)")
    parser.add_argument("--json", action="store_true")


def register(commands: Any) -> None:
    contacts = commands.add_parser(
        "contacts", help="the address book: ministries and focal points, with their history"
    )
    actions = contacts.add_subparsers(dest="contacts_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the contacts, with their state and last change")
    listing.add_argument("--state", help="only this state (ISO code, e.g. KZ)")
    listing.add_argument("--kind", choices=_KINDS)
    listing.add_argument("--instrument", help="only contacts for this instrument")
    listing.add_argument("--species", help="only focal points for this species (code)")
    listing.add_argument("--only", choices=("enabled", "disabled"))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_contacts_list)

    setting = actions.add_parser("set", help="change fields of one contact")
    setting.add_argument("key")
    setting.add_argument("--email", help="the one address mail goes to")
    _fields(setting)
    setting.add_argument(
        "--address-ru", help='the address as a Russian letter writes it ("" removes it)'
    )
    setting.add_argument(
        "--address-fr", help='the address as a French letter writes it ("" removes it)'
    )
    setting.set_defaults(handler=cmd_contacts_set)

    adding = actions.add_parser("add", help="a new contact (a ministry or a focal point)")
    adding.add_argument("key", help="a new key, e.g. kz-saiga-fp")
    adding.add_argument("--state", required=True, help="ISO code, e.g. KZ")
    adding.add_argument("--kind", required=True, choices=_KINDS)
    adding.add_argument("--email", required=True)
    adding.add_argument("--species", help="for a focal point per species: the species code")
    _fields(adding)
    adding.set_defaults(handler=cmd_contacts_add)

    for name, enabled, text in (
        ("disable", False, "send nothing more to a contact (kept, with its history)"),
        ("enable", True, "send to a disabled contact again"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("key")
        action.add_argument("--reason", help="why (kept in the history and the audit log)")
        action.add_argument("--json", action="store_true")
        action.set_defaults(handler=_cmd_enable(enabled))

    history = actions.add_parser("history", help="who changed what in one contact, and when")
    history.add_argument("key")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=cmd_contacts_history)
