"""Bounces: a delivery status notification (RFC 3464, ``multipart/report;
report-type=delivery-status``) or one of the common non-standard forms (Exim, qmail,
Exchange, Gmail texts from MAILER-DAEMON or postmaster), read for the message that did not
arrive and why.

Pure: a parsed message in, a ``Bounce`` or None out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_ORIGINAL_ID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]{1,250}>)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"\b([45]\.\d{1,3}\.\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b(5\d\d[ -].{0,200})")
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|undelivered|delivery status notification|delivery failure|"
    r"mail delivery failed|failure notice|returned mail|delivery has failed|"
    r"non remis|недоставлен|не доставлен)",
    re.IGNORECASE,
)
_DELAYED = re.compile(r"(delay|will retry|warning|задерж|retard)", re.IGNORECASE)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon")
REASON_MAX = 500


@dataclass(frozen=True)
class Bounce:
    """What a bounce says: the Message-ID of the message that failed (None if it does not say),
    the recipients that failed, and why, in one line."""

    original_message_id: str | None
    recipients: tuple[str, ...]
    reason: str


def find_bounce(mail: Message, sender: str | None) -> Bounce | None:
    """The bounce this message is, or None. A report of delay or of delivery is not one."""
    if mail.get_content_type() == "multipart/report":
        report_type = str(mail.get_param("report-type", "") or "").lower()
        if report_type == "delivery-status":
            return _standard(mail)
        return None  # a disposition notification (read receipt) or another report
    from_daemon = (sender or "").partition("@")[0].lower() in _DAEMONS
    subject = str(mail.get("Subject") or "")
    if not (from_daemon or (_null_sender(mail) and _BOUNCE_SUBJECT.search(subject))):
        return None
    if _DELAYED.search(subject):
        return None  # "delayed", "will retry": it may still arrive
    text = _texts(mail)
    original = _original_id(mail, text)
    reason = _reason(text) or " ".join(subject.split())
    recipients = tuple(dict.fromkeys(re.findall(r"<([^<>@\s]+@[^<>\s]+)>", text[:4000])))
    return Bounce(original, recipients[:10], reason[:REASON_MAX])


def _standard(mail: Message) -> Bounce | None:
    failed: list[str] = []
    reasons: list[str] = []
    action_seen = False
    original: str | None = None
    for part in mail.walk():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            for fields in _status_groups(part):
                action = fields.get("action", "").lower()
                if not action:
                    continue
                action_seen = True
                if action != "failed":
                    continue
                recipient = fields.get("final-recipient") or fields.get("original-recipient", "")
                failed.append(recipient.partition(";")[2].strip() or recipient.strip())
                status = fields.get("status", "")
                diagnostic = " ".join(fields.get("diagnostic-code", "").split())
                diagnostic = diagnostic.partition(";")[2].strip() or diagnostic
                reasons.append(" ".join(x for x in (status, diagnostic) if x))
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/global") and not original:
            original = _original_id(part, "")
    if action_seen and not failed:
        return None  # delayed, delivered, relayed: nothing bounced
    if original is None:
        original = _original_id(mail, _texts(mail))
    reason = "; ".join(dict.fromkeys(r for r in reasons if r)) or "delivery failed"
    return Bounce(original, tuple(dict.fromkeys(failed)), reason[:REASON_MAX])


def _status_groups(part: Message) -> list[dict[str, str]]:
    """The per-message and per-recipient field groups of a delivery-status part."""
    groups: list[dict[str, str]] = []
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser made one Message per group
        for group in payload:
            if isinstance(group, Message):
                groups.append({k.lower(): str(v) for k, v in group.items()})
        return groups
    text = payload if isinstance(payload, str) else ""
    for block in re.split(r"\r?\n\s*\r?\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, colon, value = line.partition(":")
            if colon and not line[:1].isspace():
                fields[name.strip().lower()] = value.strip()
        if fields:
            groups.append(fields)
    return groups


def _original_id(part: Message, text: str) -> str | None:
    """The Message-ID of the returned message: its attached copy or headers, else the text."""
    if part.get_content_type() in ("message/rfc822", "message/global"):
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        if isinstance(inner, Message) and inner.get("Message-ID"):
            found = _MESSAGE_ID.search(str(inner.get("Message-ID")))
            if found:
                return found.group(0)
    if part.get_content_type() == "text/rfc822-headers":
        text = _decoded(part) + "\n" + text
    for child in part.walk() if part.is_multipart() else ():
        if child is not part and child.get_content_type() in (
            "message/rfc822",
            "text/rfc822-headers",
            "message/global",
        ):
            found_id = _original_id(child, "")
            if found_id:
                return found_id
    found = _ORIGINAL_ID.search(text)
    if found:
        return found.group(1)
    references = str(part.get("In-Reply-To") or "") + " " + str(part.get("References") or "")
    match = _MESSAGE_ID.search(references)
    return match.group(0) if match else None


def _texts(mail: Message) -> str:
    parts = []
    for part in mail.walk():
        if part.get_content_maintype() == "text" and part.get_content_type() in (
            "text/plain",
            "text/rfc822-headers",
        ):
            parts.append(_decoded(part))
    return "\n".join(parts)[:200_000]


def _decoded(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _reason(text: str) -> str:
    status = _STATUS.search(text)
    reply = _SMTP_REPLY.search(text)
    pieces = []
    if reply:
        pieces.append(" ".join(reply.group(1).split()))
    elif status:
        line = text[text.rfind("\n", 0, status.start()) + 1 : text.find("\n", status.end())]
        pieces.append(" ".join(line.split()))
    return "; ".join(pieces)


def _null_sender(mail: Message) -> bool:
    return str(mail.get("Return-Path") or "").strip() == "<>"
