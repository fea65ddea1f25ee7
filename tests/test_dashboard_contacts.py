"""The dashboard's contacts page: everyone signed in reads the address book and each contact's
history; officers change a contact's email, name and language of correspondence and disable or
enable it, each change in the history and the audit log; a bad value is refused on the page
and changes nothing; the same values again change nothing; readers are refused (403). Both
databases."""

from __future__ import annotations

import html as html_module
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from mou.accounts.audit import logged_actions
from mou.catalogue.bootstrap import prepare_database
from mou.catalogue.contacts import contact_history, get_contact
from mou.portal.server import create_app
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.accounts import SignedInClient

PAGE = "/dashboard/contacts"


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    prepare_database(settings)
    app = create_app(settings, ingest="thread", render_reports=False)
    yield app
    app.state.portal.inline.close()


def text(response: Any) -> str:
    return html_module.unescape(response.text)


def contact_audit(settings: Settings) -> list[Any]:
    with session_scope(settings) as session:
        return [e for e in logged_actions(session) if e.action.startswith("contact.")]


def history(settings: Settings, key: str) -> list[Any]:
    with session_scope(settings) as session:
        return contact_history(session, key)


def test_the_page_lists_contacts_per_state_for_any_signed_in_account(
    app: Any, signed_in: Callable[..., SignedInClient]
) -> None:
    reader = signed_in(app, "reader")
    page = reader.get(PAGE + "?lang=en")
    assert page.status_code == 200
    body = text(page)
    assert 'id="state-TJ"' in body and 'id="contact-tj-mfa"' in body
    assert "mfa.tj<wbr>@example.org" in body and "Foreign affairs (To)" in body
    assert "Ministry of Foreign Affairs of the Republic of Tajikistan" in body
    assert "officers and administrators change them" in body
    assert 'action="/dashboard/contacts/tj-mfa' not in body  # no forms for a reader
    assert f'href="{PAGE}?lang=en"' in body  # in the toolbar
    russian = text(reader.get(PAGE + "?lang=ru"))
    assert "Министерство иностранных дел Республики Таджикистан" in russian
    assert "Электронная почта" in russian
    officer = signed_in(app, "officer")
    assert 'action="/dashboard/contacts/tj-mfa?lang=en"' in officer.get(PAGE + "?lang=en").text


def test_an_officer_changes_an_email_with_history_and_audit_and_the_same_again_is_nothing(
    app: Any, settings: Settings, signed_in: Callable[..., SignedInClient]
) -> None:
    officer = signed_in(app, "officer")
    form = {
        "email": "protocol.tj@example.org",
        "name": "Ministry of Foreign Affairs of the Republic of Tajikistan",
        "language": "ru",
        "reason": "Address corrected by the ministry",
    }
    response = officer.post_form(f"{PAGE}/tj-mfa?lang=en", form)
    assert response.status_code == 303
    assert "done=contact_changed" in response.headers["location"]
    page = text(officer.get(response.headers["location"]))
    assert "tj-mfa: the contact was changed." in page
    assert "mfa.tj@example.org → protocol.tj@example.org" in page
    assert "History (1)" in page
    with session_scope(settings) as session:
        assert get_contact(session, "tj-mfa").email == "protocol.tj@example.org"
    (change,) = history(settings, "tj-mfa")
    assert (change.actor, change.field, change.old, change.new, change.reason) == (
        officer.user.name,
        "email",
        "mfa.tj@example.org",
        "protocol.tj@example.org",
        "Address corrected by the ministry",
    )
    (entry,) = contact_audit(settings)
    assert (entry.actor, entry.action) == (officer.user.name, "contact.set")
    assert entry.reason == "Address corrected by the ministry"

    # The same values again: nothing changes, nothing is written, and the page says so.
    again = officer.post_form(f"{PAGE}/tj-mfa?lang=en", form)
    assert "done=contact_unchanged" in again.headers["location"]
    assert "nothing to change" in text(officer.get(again.headers["location"]))
    assert len(history(settings, "tj-mfa")) == 1
    assert len(contact_audit(settings)) == 1

    # The Russian name and the language of correspondence, from the Russian page.
    ru = officer.post_form(
        f"{PAGE}/tj-mfa?lang=ru",
        {"email": "protocol.tj@example.org", "name": "МИД Таджикистана", "language": "en"},
    )
    assert ru.status_code == 303
    assert "данные адресата изменены" in text(officer.get(ru.headers["location"]))
    with session_scope(settings) as session:
        contact = get_contact(session, "tj-mfa")
    assert contact.name["ru"] == "МИД Таджикистана" and contact.language == "en"
    assert contact.name["en"] == "Ministry of Foreign Affairs of the Republic of Tajikistan"


def test_a_bad_email_is_refused_with_a_clear_notice_and_changes_nothing(
    app: Any, settings: Settings, signed_in: Callable[..., SignedInClient]
) -> None:
    officer = signed_in(app, "officer")
    for bad in ("not an address", "two@example.org, three@example.org"):
        response = officer.post_form(
            f"{PAGE}/tj-mfa?lang=en", {"email": bad, "language": "ru", "reason": "typo"}
        )
        assert response.status_code == 400
        body = text(response)
        assert "tj-mfa: nothing was changed." in body and "is not an email address" in body
        assert f'value="{bad}"' in body  # the form keeps what was typed
    bad_language = officer.post_form(
        f"{PAGE}/tj-mfa?lang=en", {"email": "protocol.tj@example.org", "language": "de"}
    )
    assert bad_language.status_code == 400 and "unknown language" in bad_language.text
    unknown = officer.post_form(f"{PAGE}/no-such-contact?lang=en", {"email": "a@example.org"})
    assert unknown.status_code == 400 and "no contact with key" in text(unknown)
    with session_scope(settings) as session:
        assert get_contact(session, "tj-mfa").email == "mfa.tj@example.org"
        assert get_contact(session, "tj-mfa").language == "ru"
    assert history(settings, "tj-mfa") == []
    assert contact_audit(settings) == []


def test_an_officer_disables_and_enables_a_contact_and_a_reader_is_refused(
    app: Any, settings: Settings, signed_in: Callable[..., SignedInClient]
) -> None:
    reader = signed_in(app, "reader")
    for path in (f"{PAGE}/tj-mfa", f"{PAGE}/tj-mfa/disable", f"{PAGE}/tj-mfa/enable"):
        refused = reader.post_form(path, {"email": "x@example.org", "reason": "no"})
        assert refused.status_code == 403 and "Not allowed for your role" in refused.text
    officer = signed_in(app, "officer")
    off = officer.post_form(f"{PAGE}/tj-mfa/disable?lang=en", {"reason": "Ministry merged"})
    assert "done=contact_disabled" in off.headers["location"]
    page = text(officer.get(off.headers["location"]))
    assert "requests are no longer sent to it" in page and "Disabled since" in page
    assert 'action="/dashboard/contacts/tj-mfa/enable?lang=en"' in page
    again = officer.post_form(f"{PAGE}/tj-mfa/disable?lang=en", {"reason": "twice"})
    assert "done=contact_unchanged" in again.headers["location"]
    on = officer.post_form(f"{PAGE}/tj-mfa/enable?lang=en", {"reason": "Back"})
    assert "done=contact_enabled" in on.headers["location"]
    with session_scope(settings) as session:
        assert get_contact(session, "tj-mfa").enabled
        authority = session.scalars(select(m.Authority).filter_by(key="tj-mfa")).one()
        assert authority.email == "mfa.tj@example.org"
    assert [c.reason for c in history(settings, "tj-mfa")] == ["Ministry merged", "Back"]
    assert [e.action for e in contact_audit(settings)] == ["contact.disable", "contact.enable"]
    assert all(e.actor == officer.user.name for e in contact_audit(settings))
