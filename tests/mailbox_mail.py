"""Test helpers: messages as ministries, their mail servers and their auto-responders send."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mou.clock import utcnow
from mou.mail.message import POLICY, set_subject
from mou.workbook import XLSX_CONTENT_TYPE


def reply(
    original: EmailMessage | None,
    sender: str,
    *,
    text: str = "Please find our report attached.",
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    headers: dict[str, str] | None = None,
    subject: str | None = None,
    to: str = "cms.secretariat@example.org",
) -> EmailMessage:
    """A reply to ``original`` (threaded as mail clients do), or a new message."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = sender
    mail["To"] = to
    if subject is None:
        subject = f"Re: {original['Subject']}" if original is not None else "Report"
    # Encoded as a careful mail client does (the standard library's folder can drop a space
    # at a fold, a fault of the sending side this test is not about).
    set_subject(mail, subject)
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(domain="ministry.example.org")
    if original is not None:
        mail["In-Reply-To"] = original["Message-ID"]
        mail["References"] = original["Message-ID"]
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(text)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail


def xlsx(filename: str, data: bytes) -> tuple[str, str, bytes]:
    return (filename, XLSX_CONTENT_TYPE, data)


def zipped(*files: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def forwarded(inner: EmailMessage, sender: str) -> EmailMessage:
    """``inner`` forwarded as an attachment (message/rfc822), as Outlook and Thunderbird do."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = sender
    mail["To"] = "cms.secretariat@example.org"
    mail["Subject"] = f"Fwd: {inner['Subject']}"
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(domain="ministry.example.org")
    mail.set_content("Forwarding the report of our ministry.")
    mail.add_attachment(inner, filename="forwarded.eml")
    return mail


def delivery_status_notification(
    original: EmailMessage, recipient: str, *, action: str = "failed"
) -> bytes:
    """An RFC 3464 bounce of ``original`` for ``recipient``, as Postfix writes it."""
    headers = "".join(
        f"{name}: {original[name]}\r\n" for name in ("From", "To", "Date", "Message-ID")
    )
    return (
        "From: MAILER-DAEMON@relay.example.org (Mail Delivery System)\r\n"
        "To: cms.secretariat@example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(utcnow())}\r\n"
        f"Message-ID: {make_msgid(domain='relay.example.org')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n'
        "\r\n"
        "--B1\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host relay.example.org.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "--B1\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:\r\n"
        "    User unknown in virtual mailbox table\r\n\r\n"
        "--B1\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}\r\n"
        "--B1--\r\n"
    ).encode()


def exim_bounce(original: EmailMessage, recipient: str) -> EmailMessage:
    """The plain-text bounce Exim and many ministry servers send (no delivery-status part)."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = "Mail Delivery System <Mailer-Daemon@mail.ministry.example.org>"
    mail["To"] = "cms.secretariat@example.org"
    mail["Subject"] = "Mail delivery failed: returning message to sender"
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid(domain="mail.ministry.example.org")
    mail.set_content(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {recipient}\n"
        "    host mx.ministry.example.org [192.0.2.1]\n"
        "    SMTP error from remote mail server after RCPT TO:<" + recipient + ">:\n"
        "    550 No such user here\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"Message-ID: {original['Message-ID']}\n"
        f"Subject: {original['Subject']}\n"
    )
    return mail
