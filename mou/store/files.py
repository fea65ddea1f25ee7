"""Immutable, sha256-addressed file store under ``var/files`` (raw returns, PDFs, templates)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from mou.store import models as m
from mou.store.database import insert_unless_present


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_for(files_dir: Path, sha256: str) -> Path:
    return files_dir / sha256[:2] / sha256[2:4] / sha256


def write_bytes(files_dir: Path, data: bytes) -> str:
    """Store the bytes once (atomic rename, never overwritten); returns their sha256."""
    digest = sha256_of(data)
    target = path_for(files_dir, digest)
    if target.exists():
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        os.chmod(target, 0o444)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def store(session: Session, files_dir: Path, data: bytes) -> str:
    """Write the bytes to disk first, then record them once; returns their sha256.

    The same bytes recorded at the same moment by another transaction are not a conflict.
    """
    digest = write_bytes(files_dir, data)
    session.execute(
        insert_unless_present(session, m.StoredFile, "sha256").values(sha256=digest, size=len(data))
    )
    return digest


def read_bytes(files_dir: Path, sha256: str) -> bytes:
    return path_for(files_dir, sha256).read_bytes()
