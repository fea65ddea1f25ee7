"""Supporting documents sent beside a return (national plans, maps, legal texts): kept with
the submission, their type told by their first bytes, never opened beyond that.

``sniff_document`` is pure (bytes in, a media type or None out); ``keep_document`` stores the
bytes (sha256-addressed, like returns) and a row, once per submission and content.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mou.intake.record import safe_filename
from mou.settings import Settings
from mou.store import files as filestore
from mou.store import models as m
from mou.store.database import begin_sqlite_transaction

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
TIFF = "image/tiff"
WEBP = "image/webp"

# What each accepted type is called in a listing, and its usual file ending.
DOCUMENT_TYPES = {
    PDF: ("PDF", ".pdf"),
    DOCX: ("Word", ".docx"),
    ODT: ("OpenDocument text", ".odt"),
    XLSX: ("Excel", ".xlsx"),
    ODS: ("OpenDocument spreadsheet", ".ods"),
    PNG: ("PNG image", ".png"),
    JPEG: ("JPEG image", ".jpg"),
    GIF: ("GIF image", ".gif"),
    TIFF: ("TIFF image", ".tif"),
    WEBP: ("WebP image", ".webp"),
}
_ZIP = b"PK\x03\x04"


def sniff_document(data: bytes) -> str | None:
    """The media type of an accepted supporting document, from its bytes; None for others.

    Office files are zips: only the names in the central directory are read (no member is
    inflated but ODF's few-byte ``mimetype``), so nothing untrusted is parsed."""
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(_ZIP):
        return _office_type(data)
    return None


def _office_type(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                info = archive.getinfo("mimetype")
                if info.file_size > 100:
                    return None
                declared = archive.read(info).decode("ascii", "replace").strip()
                return declared if declared in (ODT, ODS) else None
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    return None


@dataclass(frozen=True)
class DocumentRefusal:
    """Why a document was not kept (shown to the sender and logged)."""

    filename: str
    reason: str  # unsupported_document | document_too_large


def document_problem(settings: Settings, filename: str, data: bytes) -> DocumentRefusal | None:
    """None if the document can be kept, else why not."""
    if len(data) > settings.max_document_bytes:
        return DocumentRefusal(safe_filename(filename), "document_too_large")
    if sniff_document(data) is None:
        return DocumentRefusal(safe_filename(filename), "unsupported_document")
    return None


def keep_document(
    session: Session,
    settings: Settings,
    submission_id: int,
    filename: str | None,
    data: bytes,
    *,
    channel: str,
    mail_message_id: int | None = None,
) -> m.SupportingDocument:
    """Store a supporting document with a submission; the same bytes again give the first row.

    ValueError if it is of a type not kept or over ``max_document_bytes`` (see
    ``document_problem``)."""
    problem = document_problem(settings, filename or "", data)
    if problem is not None:
        raise ValueError(f"{problem.filename}: {problem.reason}")
    content_type = sniff_document(data)
    assert content_type is not None
    sha256 = filestore.write_bytes(settings.files_dir, data)
    existing = session.scalars(
        select(m.SupportingDocument).filter_by(submission_id=submission_id, sha256=sha256)
    ).first()
    if existing is not None:
        return existing
    begin_sqlite_transaction(session)
    filestore.store(session, settings.files_dir, data)
    document = m.SupportingDocument(
        submission_id=submission_id,
        sha256=sha256,
        filename=safe_filename(filename or f"document{DOCUMENT_TYPES[content_type][1]}"),
        content_type=content_type,
        size=len(data),
        channel=channel,
        mail_message_id=mail_message_id,
    )
    session.add(document)
    session.flush()
    return document


def documents_of(
    session: Session, submission_ids: list[int]
) -> dict[int, list[m.SupportingDocument]]:
    """The supporting documents of each submission, in the order they were kept."""
    found: dict[int, list[m.SupportingDocument]] = {sid: [] for sid in submission_ids}
    if not submission_ids:
        return found
    for document in session.scalars(
        select(m.SupportingDocument)
        .where(m.SupportingDocument.submission_id.in_(submission_ids))
        .order_by(m.SupportingDocument.id)
    ):
        found[document.submission_id].append(document)
    return found
