"""The public page of releases (no sign-in): per instrument and cycle, the PDFs the
Secretariat published (``mou publish`` or the dashboard) with the release date, in en/ru/fr.

Only a release not withdrawn is listed or served, and only a file by exact name from the
listing of its folder (never a path from the URL); anything else is a 404, so an unpublished
report stays private."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path as FilePath

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, Response

from mou.portal.security import content_disposition
from mou.portal.shared import MAX_ID, Portal, PortalError
from mou.secretariat.publication import KINDS, public_releases
from mou.service.protocol import national_reports, reports_folder
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope


@dataclass(frozen=True)
class ReleasedFile:
    name: str  # the file's name in its folder, and in the URL
    language: str
    state: str | None  # a national report's state code
    path: FilePath


@dataclass
class ReleasedKind:
    kind: str
    released_at: dt.datetime
    files: list[ReleasedFile]


@dataclass
class ReleasedCycle:
    cycle_id: int
    instrument: str
    instrument_names: dict[str, str]
    period: str
    state_names: dict[str, dict[str, str]]
    kinds: list[ReleasedKind] = field(default_factory=list)


def released_files(
    settings: Settings, cycle_id: int, folder: FilePath, languages: list[str], kind: str
) -> list[ReleasedFile]:
    """The PDFs of one kind of a cycle's release that exist on disk (``folder``: the cycle's
    reports folder; ``languages``: its instrument's)."""
    if kind == "reports":
        found = []
        for language in languages:
            path = folder / f"progress-summary-{language}.pdf"
            if path.is_file() and not path.is_symlink():
                found.append(ReleasedFile(path.name, language, None, path))
        return found
    files = []
    for code, paths in national_reports(settings, cycle_id).items():
        for path in paths:
            language = path.stem.rsplit("-", 1)[-1]
            if path.is_file() and not path.is_symlink():
                files.append(ReleasedFile(path.name, language, code, path))
    return files


def releases(settings: Settings) -> list[ReleasedCycle]:
    """Every cycle with a release, newest first, with its released files."""
    cycles: dict[int, ReleasedCycle] = {}
    places: dict[int, tuple[FilePath, list[str]]] = {}
    with session_scope(settings) as session:
        for release in public_releases(session):
            cycle = session.get(m.ReportingCycle, release.cycle_id)
            if cycle is None:
                continue
            entry = cycles.get(cycle.id)
            if entry is None:
                entry = cycles[cycle.id] = ReleasedCycle(
                    cycle_id=cycle.id,
                    instrument=cycle.instrument.code,
                    instrument_names=dict(cycle.instrument.short_name),
                    period=cycle.period,
                    state_names={r.state.code: dict(r.state.name) for r in cycle.requests},
                )
                places[cycle.id] = (
                    reports_folder(settings, cycle),
                    list(cycle.instrument.languages),
                )
            entry.kinds.append(ReleasedKind(release.kind, release.released_at, []))
    for entry in cycles.values():  # the files are looked for once the session is over
        folder, languages = places[entry.cycle_id]
        for released in entry.kinds:
            released.files = released_files(
                settings, entry.cycle_id, folder, languages, released.kind
            )
    return list(cycles.values())


def router(portal: Portal) -> APIRouter:
    """/releases and the released files under it."""
    settings = portal.settings
    routes = APIRouter()

    @routes.get("/releases", include_in_schema=False)
    def releases_page(request: Request) -> Response:
        lang = portal.lang_of(request)
        return portal.render(
            request,
            "releases.html",
            lang,
            cycles=releases(settings),
        )

    @routes.get("/releases/{cycle_id}/{kind}/{name}", include_in_schema=False)
    def released_file(
        request: Request, kind: str, name: str, cycle_id: int = Path(ge=1, le=MAX_ID)
    ) -> Response:
        lang = portal.lang_of(request)
        if kind not in KINDS:
            raise PortalError(404, "not_found", lang=lang)
        for entry in releases(settings):
            if entry.cycle_id != cycle_id:
                continue
            for released in entry.kinds:
                if released.kind != kind:
                    continue
                for file in released.files:
                    if file.name == name:
                        return FileResponse(
                            file.path,
                            media_type="application/pdf",
                            headers={
                                "content-disposition": content_disposition(name, "report.pdf")
                            },
                        )
        raise PortalError(404, "not_found", lang=lang)

    return routes
