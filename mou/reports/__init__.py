"""PDF documents: the consolidated progress summary, the per-state summary, request letters.

Jinja2 templates under ``templates/reports/`` (autoescaped, gettext catalogues in en, ru, fr),
laid out by WeasyPrint as tagged PDF/UA-1 with the project's own embedded fonts, and
reproducible: the same data gives the same bytes.
"""

from __future__ import annotations

from mou.reports.assets import AssetFetcher, AssetRefused
from mou.reports.i18n import LANGUAGES, Formatter
from mou.reports.letters import (
    Addressee,
    RequestLetter,
    render_request_letter,
    request_letter_for,
    request_letter_html,
)
from mou.reports.render import (
    document_symbol,
    html_to_pdf,
    progress_summary_html,
    render_progress_summary,
    render_state_summary,
    state_summary_html,
)

__all__ = [
    "LANGUAGES",
    "Addressee",
    "AssetFetcher",
    "AssetRefused",
    "Formatter",
    "RequestLetter",
    "document_symbol",
    "html_to_pdf",
    "progress_summary_html",
    "render_progress_summary",
    "render_request_letter",
    "render_state_summary",
    "request_letter_for",
    "request_letter_html",
    "state_summary_html",
]
