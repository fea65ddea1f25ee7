"""An incoming email as facts: who sent it, which thread it is in, whether a person or a
machine wrote it, and the files it carries (also inside a .zip or a forwarded message).

Pure: bytes in, a frozen ``IncomingMail`` out; no database, no network. The files are not
read here beyond their first bytes and, for a zip, its directory and capped members.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from mou.clock import as_utc
from mou.mailbox.bounces import Bounce, find_bounce

# What the intake reads or explains (.xls, .ods and .xlsm get their "save as .xlsx" answer).
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
SPREADSHEET_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-excel.sheet.macroenabled.12": ".xlsm",
    "application/vnd.oasis.opendocument.spreadsheet": ".ods",
}
ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
MAX_DEPTH = 3  # a forwarded message inside a forwarded message inside the message
MAX_PARTS = 50  # files taken from one message (zip members included)
MAX_ZIP_MEMBERS = 200

# Subjects of out-of-office and automatic replies that carry none of the standard headers.
# Narrow on purpose: a message taken for automatic is not read for workbooks.
_AUTO_SUBJECT = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto[- ]?reply|autoreply|"
    r"abwesenheit\w*|automatische antwort|absen(ce|te?) du bureau|r[ée]ponse automatique|"
    r"автоответ|автоматический ответ|нет на месте|вне офиса)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FilePart:
    """A file found in a message: as named by the sender, its declared type, its bytes."""

    filename: str
    content_type: str
    data: bytes
    via: str = ""  # "", "zip NAME" or "forwarded" - where it was found


@dataclass(frozen=True)
class IncomingMail:
    message_id: str | None  # "<...>", as written
    sender: str | None  # the From address (no name)
    from_header: str
    subject: str
    date: dt.datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    # Why no answer may be sent (RFC 3834 and the common forms), or None: a person wrote it.
    automatic: str | None
    bounce: Bounce | None
    workbooks: tuple[FilePart, ...] = ()
    documents: tuple[FilePart, ...] = ()
    # Files not taken, with why: "NAME: reason" (an unreadable zip, too many files...).
    skipped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """The Message-IDs this message answers, nearest first."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [ref for ref in reversed(self.references) if ref not in ids]
        return tuple(ids)


def parse_mail(
    raw: bytes, *, own_address: str = "", max_inflated: int = 64 * 2**20
) -> IncomingMail:
    """Read a message's headers and files. ``own_address``: the service's From, whose own
    messages coming back are never answered."""
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    sender = _address(mail, "From")
    bounce = find_bounce(mail, sender)
    automatic = automatic_reason(mail, sender, own_address) if bounce is None else "bounce"
    found = _Files(max_inflated)
    if bounce is None:  # a bounce carries our own request back: its workbook is not a return
        found.walk(mail, depth=0, via="")
    workbooks, documents = _sort_spreadsheets(found.files)
    return IncomingMail(
        message_id=_message_id(mail.get("Message-ID")),
        sender=sender,
        from_header=_header(mail, "From"),
        subject=" ".join(_header(mail, "Subject").split()),
        date=_date(mail),
        in_reply_to=_message_id(mail.get("In-Reply-To")),
        references=tuple(_MESSAGE_ID.findall(_header(mail, "References")))[-20:],
        automatic=automatic,
        bounce=bounce,
        workbooks=tuple(workbooks),
        documents=tuple(documents),
        skipped=tuple(found.skipped),
    )


def automatic_reason(mail: Message, sender: str | None, own_address: str = "") -> str | None:
    """Why this message must get no automatic answer, or None (RFC 3834 section 2)."""
    auto_submitted = _header(mail, "Auto-Submitted").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if mail.get(name) is not None:
            return name
    suppress = _header(mail, "X-Auto-Response-Suppress").lower()
    if any(word in suppress for word in ("all", "oof", "autoreply")):
        return f"X-Auto-Response-Suppress: {suppress}"
    precedence = _header(mail, "Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if mail.get("List-Id") is not None or mail.get("List-Unsubscribe") is not None:
        return "mailing list"
    if _header(mail, "Return-Path").strip() == "<>":
        return "Return-Path: <>"
    if not sender:
        return "no From address"
    local = sender.partition("@")[0].lower()
    if local in ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"):
        return f"From: {sender}"
    if own_address and sender.lower() == own_address.lower():
        return "from the service's own address"
    if _AUTO_SUBJECT.match(_header(mail, "Subject")):
        return "subject of an automatic reply"
    return None


class _Files:
    """Collects the files of a message, following forwarded messages and zips, capped."""

    def __init__(self, max_inflated: int) -> None:
        self.files: list[FilePart] = []
        self.skipped: list[str] = []
        self.inflated_left = max_inflated

    def walk(self, part: Message, depth: int, via: str) -> None:
        if part.is_multipart():
            for child in part.get_payload():
                if isinstance(child, Message):
                    self.walk(child, depth, via)
            return
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if not isinstance(inner, Message):
                return
            if depth + 1 > MAX_DEPTH:
                self.skipped.append("forwarded message: forwarded too many times over")
                return
            self.walk(inner, depth + 1, "forwarded")
            return
        filename = _filename(part)
        if not filename and part.get_content_disposition() != "attachment":
            return  # the text of the message itself
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:  # a part no decoder can read: nothing to take
            self.skipped.append(f"{filename or 'attachment'}: unreadable")
            return
        if not data:
            return
        # A spreadsheet sent without a file name is named after its declared type.
        name = filename or "attachment" + SPREADSHEET_TYPES.get(content_type, "")
        if _is_zip(name, content_type, data) and not name.lower().endswith(SPREADSHEET_SUFFIXES):
            self._unzip(name, data, via)
            return
        self._add(FilePart(name, content_type, bytes(data), via))

    def _add(self, part: FilePart) -> None:
        if len(self.files) >= MAX_PARTS:
            self.skipped.append(f"{part.filename}: more than {MAX_PARTS} files in one message")
            return
        self.files.append(part)

    def _unzip(self, name: str, data: bytes, via: str) -> None:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError):
            self.skipped.append(f"{name}: not a readable zip file")
            return
        with archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            if len(members) > MAX_ZIP_MEMBERS:
                self.skipped.append(f"{name}: more than {MAX_ZIP_MEMBERS} files in the zip")
                return
            for info in members:
                member = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
                if not member or member.startswith((".", "~$")) or "__MACOSX" in info.filename:
                    continue
                if info.flag_bits & 0x1:
                    self.skipped.append(f"{name}/{member}: protected by a password in the zip")
                    continue
                content = self._read_capped(archive, info)
                if content is None:
                    self.skipped.append(f"{name}/{member}: too large once unpacked")
                    return
                self._add(FilePart(member, "application/octet-stream", content, f"zip {name}"))

    def _read_capped(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
        # Count the bytes actually inflated, not the sizes the zip claims (zip bombs).
        chunks = []
        try:
            with archive.open(info) as member:
                while True:
                    chunk = member.read(min(1 << 20, self.inflated_left + 1))
                    if not chunk:
                        break
                    self.inflated_left -= len(chunk)
                    if self.inflated_left < 0:
                        return None
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
            self.skipped.append(f"{info.filename}: not readable in its zip")
            return b""
        return b"".join(chunks)


def _sort_spreadsheets(files: list[FilePart]) -> tuple[list[FilePart], list[FilePart]]:
    """Which files are returns (to the intake) and which supporting documents.

    Every spreadsheet is a return, unless the message carries several and only some are
    made from a template (custom document properties, which Excel and LibreOffice keep):
    then the others are supporting tables."""
    sheets = [f for f in files if _is_spreadsheet(f) and f.data]
    others = [f for f in files if f not in sheets and f.data]
    if len(sheets) > 1:
        templated = [f for f in sheets if _has_custom_properties(f.data)]
        if templated:
            others += [f for f in sheets if f not in templated]
            sheets = templated
    return sheets, others


def _is_spreadsheet(part: FilePart) -> bool:
    return part.filename.lower().endswith(SPREADSHEET_SUFFIXES)


def _has_custom_properties(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "docProps/custom.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _is_zip(name: str, content_type: str, data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" and (
        name.lower().endswith(".zip") or content_type in ZIP_TYPES
    )


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # a malformed RFC 2231 parameter
        name = ""
    return " ".join(str(name).split())[:255]


_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")


def _message_id(value: object) -> str | None:
    if value is None:
        return None
    found = _MESSAGE_ID.search(str(value))
    return found.group(0) if found else None


def _header(mail: Message, name: str) -> str:
    try:
        value = mail.get(name)
    except Exception:  # a header the parser cannot make sense of
        return ""
    return "" if value is None else str(value)


def _address(mail: Message, name: str) -> str | None:
    pairs = getaddresses([_header(mail, name)])
    for _, address in pairs:
        address = address.strip()
        if "@" in address and len(address) <= 254 and " " not in address:
            return address
    return None


def _date(mail: Message) -> dt.datetime | None:
    value = _header(mail, "Date")
    if not value:
        return None
    try:
        return as_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None
