"""The MIME form of an outbox message: addresses, content types, the ``.eml`` file name.

A row gives the same headers on every attempt (its Date is the time it was composed, its
Message-ID fixed at enqueue), so a resent message can be recognised as the same one.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime

from mou.addresses import parse_address
from mou.clock import utcnow
from mou.settings import Settings
from mou.store import files as filestore
from mou.store.models import OutboxMessage

# Bodies are base64/quoted-printable rather than 8bit, so relays without 8BITMIME accept them;
# non-ASCII headers and filenames are RFC 2047/2231 encoded.
POLICY = email.policy.SMTP.clone(cte_type="7bit")
# Messages sent in answer to one received: receipts, and the answer to mail with no workbook.
REPLY_KINDS = ("receipt", "mail-answer")


def build_email(message: OutboxMessage, settings: Settings) -> EmailMessage:
    """The MIME message for an outbox row, attachments read from the file store."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = parse_address(message.sender or settings.mail_from)
    mail["To"] = [parse_address(text) for text in message.to]
    if message.cc:
        mail["Cc"] = [parse_address(text) for text in message.cc]
    set_subject(mail, message.subject)
    # The time the message was composed, so every retry produces the same headers (aware
    # UTC as read back, so the zone is "+0000" on both databases).
    mail["Date"] = format_datetime(message.created_at or utcnow())
    mail["Message-ID"] = message.message_id
    if message.in_reply_to:
        mail["In-Reply-To"] = message.in_reply_to
    if message.references:
        mail["References"] = message.references
    # RFC 3834: every message of the service is automatic, so auto-responders stay quiet
    # (and nothing answers an answer); replies to a message say so.
    mail["Auto-Submitted"] = "auto-replied" if message.kind in REPLY_KINDS else "auto-generated"
    mail.set_content(message.body_text)
    if message.body_html:
        mail.add_alternative(message.body_html, subtype="html")
    for item in message.attachments or []:
        data = filestore.read_bytes(settings.files_dir, item["sha256"])
        maintype, subtype, params = _content_type(str(item.get("content_type") or ""))
        mail.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=item["filename"], params=params
        )
    return mail


def set_subject(mail: EmailMessage, subject: str) -> None:
    """The Subject, every space kept however a mail client decodes it.

    The standard library's folder sometimes turns the space between two words into the
    folding whitespace between two encoded words, which RFC 2047 decoders drop
    ("принят:Туркменистан"). A subject that needs encoding is encoded here instead, each
    space inside an encoded word, and stored as folded (lines under 78 characters, so the
    policy does not fold it again)."""
    # One line, no leading or trailing space; a no-break space (31 марта 2027 г.) stays.
    subject = re.sub(r"[ \t\r\n]+", " ", subject).strip(" ")
    if subject.isascii():
        mail["Subject"] = subject
        return
    encoded = Header(subject, "utf-8", maxlinelen=76, header_name="Subject").encode()
    mail.set_raw("Subject", encoded)


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    """``text/csv; charset=utf-8`` -> ("text", "csv", {"charset": "utf-8"})."""
    kind, *rest = value.split(";")
    maintype, _, subtype = kind.strip().lower().partition("/")
    if not maintype or not subtype:
        return "application", "octet-stream", {}
    params = {}
    for item in rest:
        name, _, param = item.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return maintype, subtype, params


def eml_filename(key: str) -> str:
    """A file name for an outbox key: ``request:3:12:1`` -> ``request_3_12_1.eml``.

    Injective: ``:`` becomes ``_``; any other character but letters, digits, ``.`` and ``-``
    (``_`` and ``=`` included, and a leading ``.``) becomes ``=XX`` per UTF-8 byte, so two keys
    never share a file and no name is hidden or leaves the folder.
    """
    parts: list[str] = []
    for position, char in enumerate(key):
        if char.isascii() and (char.isalnum() or char == "-" or (char == "." and position)):
            parts.append(char)
        elif char == ":":
            parts.append("_")
        else:
            parts.extend(f"={byte:02X}" for byte in char.encode("utf-8"))
    name = "".join(parts)
    if len(name) > 200:  # stay under the usual 255-byte limit
        name = f"{name[:180]}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}"
    return f"{name}.eml"
