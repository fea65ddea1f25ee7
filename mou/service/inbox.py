"""The drop folder (var/inbox): each new file is recorded, then announced for ingest.

A file is taken once its size has stayed the same between two looks (still being copied
otherwise). A sidecar ``<file>.json`` may say who sent it: {"sender": ..., "state": ...}.
Taken files move to ``inbox/taken/``; the bytes are already in the file store.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from mou.service.protocol import INGEST_INLINE, INGEST_QUEUED, InlineIngest, receive_file
from mou.settings import Settings

log = logging.getLogger(__name__)
TAKEN = "taken"


def _sidecar(path: Path) -> dict[str, str]:
    sidecar = path.with_name(path.name + ".json")
    if not sidecar.exists():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        return {k: str(v) for k, v in data.items() if k in ("sender", "state") and v}
    except (OSError, ValueError):
        return {}


def take_file(settings: Settings, path: Path, ingest: InlineIngest | None = None) -> int | None:
    """Record one dropped file and move it aside; returns the submission id. With ``ingest``
    the return is decided here at once; without, the deployment trigger decides it."""
    data = path.read_bytes()
    meta = _sidecar(path)
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
        self, settings: Settings, interval: float = 0.25, ingest: InlineIngest | None = None
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.ingest = ingest
        self._sizes: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inbox-watcher", daemon=True)

    def start(self) -> None:
        self.settings.inbox_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def scan(self) -> list[int]:
        """One look at the folder; returns the submissions recorded."""
        recorded = []
        seen: dict[Path, int] = {}
        for path in sorted(self.settings.inbox_dir.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.suffix == ".json":
                continue
            size = path.stat().st_size
            seen[path] = size
            if self._sizes.get(path) != size:
                continue  # new or still growing: look again next time
            try:
                submission_id = take_file(self.settings, path, self.ingest)
            except Exception:  # a database hiccup: the file stays and is tried again
                log.exception("could not take %s from the inbox", path.name)
                continue
            if submission_id is not None:
                recorded.append(submission_id)
                seen.pop(path, None)
        self._sizes = seen
        return recorded

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except OSError:
                log.exception("inbox scan failed")
