"""Documents as PDF: the Jinja2 environment of a language and WeasyPrint's layout, shared by
the request letters and the reports.

Autoescape is on for every template; ministry text is data, never markup or template source.
Rendering is reproducible (the same data gives the same bytes): the creation date comes from the
data, the file identifier from a hash of the HTML, and embedded fonts carry no build time.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mou.clock import as_utc
from mou.documents.assets import AssetFetcher
from mou.errors import Refused
from mou.i18n.formatting import Formatter
from mou.i18n.gettext import translations
from mou.i18n.languages import check_language, pick
from mou.settings import Settings

Gettext = Callable[[str], str]


def reports_dir(settings: Settings) -> Path:
    return settings.templates_dir / "reports"


def locale_dir(settings: Settings) -> Path:
    return reports_dir(settings) / "locale"


def fonts_dir(settings: Settings) -> Path:
    return reports_dir(settings) / "fonts"


@lru_cache(maxsize=16)
def date_cell(text: str) -> str:
    """A written-out date for a narrow column: it breaks only before the year ("13 мар." /
    "2027 г."), never between the day and its month nor before "г."."""
    day, _, rest = text.partition(" ")
    return f"{day}\u00a0{rest}".replace(" г.", "\u00a0г.") if rest else text


def _environment(templates: Path, locales: Path, language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(templates),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locales, language), newstyle=True)  # type: ignore[attr-defined]
    fmt = Formatter(language)
    env.filters.update(
        number=fmt.number,
        signed=fmt.signed,
        percent=fmt.percent,
        date=fmt.date,
        tr=lambda value: pick(value, language),
        date_cell=date_cell,
    )
    env.globals["lang"] = language
    return env


def environment(settings: Settings, language: str) -> Environment:
    """The Jinja2 environment of ``language`` (autoescape on, gettext installed)."""
    check_language(language)
    return _environment(reports_dir(settings), locale_dir(settings), language)


def gettext_of(settings: Settings, language: str) -> Gettext:
    return translations(locale_dir(settings), language).gettext


def document_symbol(instrument_code: str, period: str, part: str) -> str:
    """UN-style symbol: UNEP/CMS/<instrument>/NR.<period>/<part>.

    ``<instrument>`` is the initials of a hyphenated code (bukhara-deer → BD) or the code in
    capitals (cami → CAMI); ``NR.<period>`` names the national-report cycle; ``<part>`` is
    ``Inf.1`` for the consolidated progress summary and the state's ISO 3166 alpha-3 code for a
    per-state summary. Example: UNEP/CMS/BD/NR.2023-2024/Inf.1.
    """
    words = [w for w in instrument_code.split("-") if w]
    prefix = "".join(w[0] for w in words).upper() if len(words) > 1 else instrument_code.upper()
    return f"UNEP/CMS/{prefix}/NR.{period}/{part}"


def w3c_moment(moment: dt.datetime) -> str:
    moment = as_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def html_to_pdf(html: str, settings: Settings, *, fetcher: AssetFetcher | None = None) -> bytes:
    """WeasyPrint on final HTML: tagged PDF/UA-1, only the project's assets, reproducible.

    The creation date comes from ``<meta name=dcterms.created>`` in the HTML (set from the
    data), and the file identifier from a hash of the HTML, so the same data gives the same
    bytes.
    """
    from weasyprint import HTML

    require_harfbuzz_subset()
    assets = reports_dir(settings).resolve()
    fetcher = fetcher or AssetFetcher(assets)
    identifier = hashlib.sha256(html.encode("utf-8")).hexdigest()[:32].encode("ascii")
    with _collector_paused():
        document = HTML(string=html, base_url=assets.as_uri() + "/", url_fetcher=fetcher)
        # No pdf_identifier here: given one, pydyf serialises (and compresses) every object
        # of the file a second time only to hash it; the identifier is added afterwards.
        pdf = document.write_pdf(pdf_variant="pdf/ua-1")
        del document
    return with_file_identifier(pdf, identifier)


def require_harfbuzz_subset() -> None:
    """Refuse to render without HarfBuzz's subset library.

    Without it WeasyPrint falls back to fontTools, which stamps every embedded font with the
    current time, so the same data would no longer give the same bytes (and WeasyPrint is
    dropping that fallback). ``scripts/system-packages`` installs the library.
    """
    from weasyprint.text import ffi

    if ffi.harfbuzz_subset is None:
        raise Refused(
            "PDFs need HarfBuzz's subset library (libharfbuzz-subset0 on Debian and Ubuntu): "
            "run `sh scripts/system-packages` as root, or install it with your package manager."
        )


_XREF_STREAM = re.compile(rb"\d+ 0 obj\n<<(?=/Type /XRef)")


def with_file_identifier(pdf: bytes, identifier: bytes) -> bytes:
    """``pdf`` with ``/ID [(identifier) (identifier)]`` in its trailer.

    WeasyPrint writes PDF 1.7 with a cross-reference stream, the last object of the file, to
    which ``startxref`` points; an entry added inside its dictionary moves no other object
    and leaves the stream itself unchanged. Both parts of the identifier are the same, as
    ISO 32000 asks of a file that has not been updated.
    """
    if not re.fullmatch(rb"[0-9a-f]+", identifier):
        raise ValueError("the identifier must be lowercase hexadecimal")
    tail = pdf.rindex(b"startxref")
    offset = int(pdf[tail + len(b"startxref") :].split()[0])
    head = _XREF_STREAM.match(pdf, offset)
    end = pdf.find(b">>\nstream\n", head.end()) if head else -1
    if head is None or end < 0 or b"/ID" in pdf[head.end() : end]:
        raise ValueError("not a PDF with a cross-reference stream and no identifier")
    entry = b"/ID [(" + identifier + b") (" + identifier + b")]"
    return pdf[: head.end()] + entry + pdf[head.end() :]


_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while WeasyPrint lays out and writes a PDF.

    A render allocates hundreds of thousands of objects (boxes, styles, PDF objects) that
    all live until the file is written, so each automatic full collection walks every one
    of them again for nothing: about 15 % of the CPU time of the CAMI summary
    (benchmarks/RESULTS-reports.md). The render's cyclic garbage is collected once at the
    end instead. The switch is process-wide, so overlapping renders in threads are counted
    and the collector comes back, as it was, when the last one ends.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            resume = _collector_pauses == 0 and _collector_was_enabled
            if resume:
                gc.enable()
        if resume:
            # Everything the render allocated is still in the youngest generation.
            gc.collect(0)
