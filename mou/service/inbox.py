"""The drop folder (var/inbox): each new file is recorded, then announced for ingest.

A file is taken once it is complete: its size and modification time the same between two
looks, and not modified for ``settle_seconds`` (a copy over a network share pauses). A
sidecar ``<file>.json`` may say who sent it: {"sender": ..., "state": ...}. Taken files move
to ``inbox/taken/``; the bytes are already in the file store. A file whose sidecar cannot be
read moves to ``inbox/refused/`` with a note saying why, and is not tried again; a file that
cannot be recorded now (the database is away) is tried again after a growing pause.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from pathlib import Path

from mou.service.protocol import INGEST_INLINE, INGEST_QUEUED, InlineIngest, receive_file
from mou.settings import Settings

log = logging.getLogger(__name__)
TAKEN = "taken"
REFUSED = "refused"
RETRY_AFTER_MAX = 300.0  # seconds between tries of a file the database could not take


class BadSidecar(ValueError):
    """The sidecar of a dropped file is not a JSON object of sender and state."""


class TooBigToKeep(ValueError):
    """A dropped file over ``max_kept_bytes``: refused before anything is stored."""


def read_sidecar(path: Path) -> dict[str, str]:
    """What ``<file>.json`` says of the dropped file: sender and state; BadSidecar if broken."""
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadSidecar(f"{sidecar.name} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadSidecar(f'{sidecar.name} must be a JSON object such as {{"sender": "..."}}')
    unknown = sorted(set(data) - {"sender", "state"})
    if unknown:
        raise BadSidecar(f"{sidecar.name} has unknown keys {unknown}: use sender and state")
    if not all(isinstance(value, str) for value in data.values()):
        raise BadSidecar(f"{sidecar.name}: sender and state must be text")
    return {key: value for key, value in data.items() if value}


def refuse_drop(path: Path, reason: str) -> Path:
    """Move a dropped file and its sidecar to ``inbox/refused/``, with a note of why."""
    refused = path.parent / REFUSED
    refused.mkdir(exist_ok=True)
    # Unique: two refusals of the same name in one second must not overwrite each other.
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    target = refused / f"{stamp}-{path.name}"
    path.replace(target)
    sidecar = path.with_name(path.name + ".json")
    if sidecar.exists():
        sidecar.replace(refused / f"{stamp}-{sidecar.name}")
    note = target.with_name(target.name + ".refused.txt")
    note.write_text(
        f"{path.name} was not taken: {reason}\nMend it and drop both files into the inbox again.\n",
        encoding="utf-8",
    )
    log.error("inbox: %s refused: %s", path.name, reason)
    return target


def take_file(settings: Settings, path: Path, ingest: InlineIngest | None = None) -> int | None:
    """Record one dropped file and move it aside; returns the submission id. With ``ingest``
    the return is decided here at once; without, the deployment trigger decides it.

    BadSidecar if its sidecar cannot be read, TooBigToKeep if it is over the size the service
    keeps (nothing is recorded then)."""
    meta = read_sidecar(path)
    size = path.stat().st_size
    if size > settings.max_kept_bytes:
        raise TooBigToKeep(
            f"{path.name} has {size // 2**20} MB, over the {settings.max_kept_bytes // 2**20} MB"
            " the service keeps (returns may have "
            f"{settings.max_upload_bytes // 2**20} MB): nothing was recorded"
        )
    data = path.read_bytes()
    submission_id, created = receive_file(
        settings,
        data,
        filename=path.name,
        sender=meta.get("sender"),
        state=meta.get("state"),
        channel="inbox",
        ingest=INGEST_INLINE if ingest else INGEST_QUEUED,
    )
    taken = path.parent / TAKEN
    taken.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path.replace(taken / f"{stamp}-{submission_id}-{path.name}")
    sidecar = path.with_name(path.name + ".json")
    if sidecar.exists():
        sidecar.replace(taken / f"{stamp}-{submission_id}-{sidecar.name}")
    if ingest is not None and created:
        ingest.submit(submission_id)
    return submission_id


class InboxWatcher:
    """Polls the inbox in a thread; polling works on every filesystem, local or shared."""

    def __init__(
        self,
        settings: Settings,
        interval: float = 0.25,
        ingest: InlineIngest | None = None,
        settle_seconds: float = 1.0,
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.ingest = ingest
        self.settle_seconds = settle_seconds
        self._looks: dict[Path, tuple[int, int]] = {}  # (size, mtime) at the last look
        self._failures: dict[Path, tuple[int, float]] = {}  # (count, not before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    def start(self) -> None:
        self.settings.inbox_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def scan(self, now: float | None = None) -> list[int]:
        """One look at the folder; returns the submissions recorded."""
        now = time.time() if now is None else now
        recorded = []
        looks: dict[Path, tuple[int, int]] = {}
        for path in sorted(self.settings.inbox_dir.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix == ".json":
                continue
            stat = path.stat()
            looks[path] = (stat.st_size, stat.st_mtime_ns)
            if self._looks.get(path) != looks[path]:
                continue  # new or still growing: look again next time
            if now - stat.st_mtime_ns / 1e9 < self.settle_seconds:
                continue  # unchanged, but only just: a copy may resume
            sidecar = path.with_name(path.name + ".json")
            if sidecar.exists() and now - sidecar.stat().st_mtime < self.settle_seconds:
                continue  # its sidecar is still being written
            count, not_before = self._failures.get(path, (0, 0.0))
            if now < not_before:
                continue
            try:
                submission_id = take_file(self.settings, path, self.ingest)
            except (BadSidecar, TooBigToKeep) as problem:
                refuse_drop(path, str(problem))
                looks.pop(path, None)
                continue
            except Exception:  # a database hiccup: the file stays and is tried again
                log.exception("could not take %s from the inbox", path.name)
                pause = min(RETRY_AFTER_MAX, self.interval * 2 ** (count + 2))
                self._failures[path] = (count + 1, now + pause)
                continue
            self._failures.pop(path, None)
            if submission_id is not None:
                recorded.append(submission_id)
                looks.pop(path, None)
        self._looks = looks
        self._failures = {p: f for p, f in self._failures.items() if p in looks}
        return recorded

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except OSError:
                log.exception("inbox scan failed")
