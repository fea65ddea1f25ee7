"""Email addresses: the one check, shared by the outbox and the address book.

The address book (``mou.catalogue``) must refuse an address the outbox would later refuse,
or a request would fail when it is sent instead of when the address is typed; both use
``parse_address``.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr


def parse_address(text: str) -> Address:
    """``Name <local@domain>`` or a bare address as an Address; the domain in IDNA if need be.

    Raises ValueError for anything else, and for a non-ASCII mailbox name (before the ``@``).
    """
    name, addr = parseaddr(text)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {text!r}")
    if not local.isascii():
        raise ValueError(f"non-ASCII mailbox names are not supported: {text!r}")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not an email address: {text!r}") from exc
    try:
        return Address(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not an email address: {text!r}") from exc


def mailbox_address(text: str) -> str:
    """One bare address (``local@domain.tld``) as a contact stores it, trimmed; ValueError for
    anything else: a display name, several addresses, spaces, or a domain without a dot."""
    candidate = text.strip()
    if not candidate or any(ch.isspace() or ch in '<>,;"()' for ch in candidate):
        raise ValueError(f"not an email address: {text!r}")
    parsed = parse_address(candidate)
    if parsed.display_name or "." not in candidate.rpartition("@")[2].strip("."):
        raise ValueError(f"not an email address: {text!r}")
    return candidate
