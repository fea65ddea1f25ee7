"""What one state's return says, as read by the Secretariat: the summary attached to the receipt.

Autoescape is on for every template; ministry text is data, never markup or template source.
Fixed texts go through gettext; names come from the catalogue and the form specification.
"""

from __future__ import annotations

from mou.documents.pdf import (
    document_symbol,
    environment,
    fonts_dir,
    gettext_of,
    html_to_pdf,
    w3c_moment,
)
from mou.forms.spec import load_form
from mou.i18n.languages import check_language, pick
from mou.reporting.consolidation import StateReturn
from mou.reporting.sections import return_sections
from mou.settings import Settings


def state_summary_html(returned: StateReturn, language: str, settings: Settings) -> str:
    """The final HTML of one state's summary in ``language`` (what WeasyPrint lays out).

    Every question of the form is listed, unanswered ones included, with activity texts.
    """
    check_language(language)
    env = environment(settings, language)
    _ = gettext_of(settings, language)
    cycle = returned.cycle
    form = load_form(settings.forms_dir, cycle.instrument_code)
    title = _("National report as read by the Secretariat")
    state_name = returned.state.label(language)
    return env.get_template("state_summary.html").render(
        r=returned,
        cycle=cycle,
        form_title=pick(cycle.form_title, language),
        instrument_name=pick(cycle.instrument_name, language),
        short_name=pick(cycle.instrument_short_name, language),
        secretariat=pick(cycle.secretariat, language),
        symbol=document_symbol(cycle.instrument_code, cycle.period, returned.state.code),
        title=title,
        doc_title=f"{title}: {state_name}, {cycle.period}",
        state_name=state_name,
        created=w3c_moment(returned.decided_at or returned.received_at),
        doc_date=returned.decided_at or returned.received_at,
        sections=return_sections(
            returned,
            form,
            language,
            _,
            include_empty=True,
            activity_text=True,
            fonts=fonts_dir(settings),
        ),
    )


def render_state_summary(returned: StateReturn, language: str, settings: Settings) -> bytes:
    """What one state's return says, as read, as a tagged PDF (for the receipt)."""
    return html_to_pdf(state_summary_html(returned, language, settings), settings)
