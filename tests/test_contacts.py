"""Contacts as data the Secretariat edits: the catalogue only seeds them, every change is kept
(field by field, with who, when and why) and audited, disabled contacts receive nothing, and a
request goes to the addresses valid when it is made. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mou.accounts.roles import Actor, NotAllowed
from mou.catalogue.addressbook import ministries_of, state_of_address
from mou.catalogue.bootstrap import prepare_database
from mou.catalogue.contact_edits import (
    CATALOGUE_ACTOR,
    add_contact,
    disable_contact,
    enable_contact,
    set_contact,
)
from mou.catalogue.contacts import contact_history, get_contact, list_contacts
from mou.errors import Refused
from mou.reporting.consolidation import consolidate
from mou.reporting.progress_summary import progress_summary_html
from mou.service.protocol import open_and_dispatch, remind
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import session_scope
from tests.builders import build_bukhara, build_cami
from tests.conftest import relay
from tests.smtp_server import SmtpServer

PROJECT = Path(__file__).resolve().parent.parent
OFFICER = Actor("officer.one", "officer")
DEADLINE = dt.date(2027, 3, 31)
EXTRA = """
  - key: kz-extra
    state: KZ
    kind: focal_ministry
    name: {en: "Committee for Forestry and Wildlife (fictitious copy)"}
    email: extra.kz@example.org
    language: ru
    address: null
    person: null
    instruments: null
"""


def changes(settings: Settings) -> tuple[int, int]:
    """How many rows the history and the audit log hold."""
    with session_scope(settings) as session:
        return (
            session.scalar(select(func.count(m.ContactChange.id))) or 0,
            session.scalar(select(func.count(m.AuditEvent.id))) or 0,
        )


def addresses(header: str | None) -> list[str]:
    from email.utils import getaddresses

    return sorted(address for _, address in getaddresses([header or ""]))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's data whose catalogue a test may edit (forms and templates are
    the project's own)."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(PROJECT / "db", root / "db", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("forms", "templates", "flows"):
        (root / name).symlink_to(PROJECT / name)
    return root


def authorities_file(project: Path) -> Path:
    return project / "db" / "catalogue" / "authorities.yaml"


@pytest.fixture
def own_catalogue(settings: Settings, project: Path) -> Settings:
    return settings.model_copy(update={"data_root": project})


# ------------------------------------------------------------------------------- seeding --


def test_db_upgrade_seeds_each_catalogue_contact_once_without_history(settings: Settings) -> None:
    first = prepare_database(settings)
    second = prepare_database(settings)

    assert len(first["contacts_added"]) == first["contacts"] == 47
    assert second["contacts_added"] == second["contacts_disabled"] == []
    assert changes(settings) == (0, 0)  # seeding is not an edit
    with session_scope(settings) as session:
        saiga = list_contacts(session, species="saiga")
        assert [(c.key, c.state, c.kind) for c in saiga] == [
            ("kz-saiga-fp", "KZ", "focal_point"),
            ("uz-saiga-fp", "UZ", "focal_point"),
        ]
        assert contact_history(session, "kz-mfa") == []


def test_db_upgrade_fills_the_addresses_of_contacts_nobody_edited(settings: Settings) -> None:
    """A database seeded before contacts had addresses per language gets them, except on a
    contact the Secretariat edited."""
    prepare_database(settings)
    with session_scope(settings) as session:
        for authority in session.scalars(select(m.Authority)):
            authority.addresses = None  # as seeded by an older version
        session.scalars(select(m.Authority).filter_by(key="kz-env")).one().updated_at = m.utcnow()
    prepare_database(settings)
    with session_scope(settings) as session:
        mfa = session.scalars(select(m.Authority).filter_by(key="kz-mfa")).one()
        env = session.scalars(select(m.Authority).filter_by(key="kz-env")).one()
        assert mfa.addresses == {
            "ru": "Астана (вымышленный адрес)",
            "fr": "Astana (adresse fictive)",
        }
        assert env.addresses is None  # edited by the Secretariat: left as it is
    assert changes(settings) == (0, 0)


def test_db_upgrade_never_overwrites_a_contact(own_catalogue: Settings, project: Path) -> None:
    prepare_database(own_catalogue)
    with session_scope(own_catalogue) as session:
        set_contact(session, OFFICER, "kz-env", email="ecology@kz.example.org", reason="moved")
    # The file changes both an edited and an unedited contact: neither changes in the database.
    path = authorities_file(project)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("environment.kz@example.org", "yaml.env@kz.example.org").replace(
            "mfa.kz@example.org", "yaml.mfa@kz.example.org"
        ),
        encoding="utf-8",
    )
    summary = prepare_database(own_catalogue)

    assert summary["contacts_added"] == summary["contacts_disabled"] == []
    with session_scope(own_catalogue) as session:
        assert get_contact(session, "kz-env").email == "ecology@kz.example.org"
        assert get_contact(session, "kz-mfa").email == "mfa.kz@example.org"
        assert [(c.field, c.old, c.new) for c in contact_history(session, "kz-env")] == [
            ("email", "environment.kz@example.org", "ecology@kz.example.org")
        ]


def test_a_contact_removed_from_the_catalogue_is_disabled_and_receives_nothing(
    own_catalogue: Settings, project: Path, smtp: SmtpServer
) -> None:
    path = authorities_file(project)
    original = path.read_text(encoding="utf-8")
    path.write_text(original.rstrip("\n") + "\n" + EXTRA, encoding="utf-8")
    assert "kz-extra" in prepare_database(own_catalogue)["contacts_added"]
    with session_scope(own_catalogue) as session:
        kz = session.scalars(select(m.RangeState).filter_by(code="KZ")).one()
        assert "extra.kz@example.org" in ministries_of(session, kz.id, "bukhara-deer").focal_emails

    path.write_text(original, encoding="utf-8")
    summary = prepare_database(own_catalogue)
    again = prepare_database(own_catalogue)

    assert summary["contacts_disabled"] == ["kz-extra"]
    assert again["contacts_disabled"] == []
    with session_scope(own_catalogue) as session:
        extra = get_contact(session, "kz-extra")  # kept, not deleted
        assert not extra.enabled and extra.updated_at is None
        [change] = contact_history(session, "kz-extra")
        assert (change.actor, change.field, change.old, change.new) == (
            CATALOGUE_ACTOR,
            "enabled",
            True,
            False,
        )
        assert "authorities.yaml" in (change.reason or "")
        assert list_contacts(session, enabled=False) == [extra]

    service = relay(own_catalogue, smtp)
    open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["KZ"])
    remind(service, DEADLINE - dt.timedelta(days=14))
    remind(service, DEADLINE + dt.timedelta(days=7))
    assert len(smtp.received) == 3  # request, reminder, escalation
    for received in smtp.received:
        assert "extra.kz@example.org" not in received.rcpt_tos
        assert set(received.rcpt_tos) == {"mfa.kz@example.org", "environment.kz@example.org"}

    # Listed again and never edited by the Secretariat: enabled again by the next upgrade.
    path.write_text(original.rstrip("\n") + "\n" + EXTRA, encoding="utf-8")
    assert prepare_database(own_catalogue)["contacts_enabled"] == ["kz-extra"]


def test_contacts_the_secretariat_added_or_edited_stay_when_the_file_does_not_list_them(
    own_catalogue: Settings, project: Path
) -> None:
    prepare_database(own_catalogue)
    with session_scope(own_catalogue) as session:
        add_contact(
            session,
            OFFICER,
            "kz-argali-fp",
            state="KZ",
            kind="focal_point",
            species="argali",
            email="argali@kz.example.org",
            name={"en": "Argali focal point"},
        )
        set_contact(session, OFFICER, "uz-saiga-fp", names={"ru": "Координатор по сайгаку"})
    path = authorities_file(project)
    text = path.read_text(encoding="utf-8")
    start = text.index("  - key: uz-saiga-fp")
    end = text.index("  - key: mn-snow-leopard-fp")
    path.write_text(text[:start] + text[end:], encoding="utf-8")

    assert prepare_database(own_catalogue)["contacts_disabled"] == []
    with session_scope(own_catalogue) as session:
        assert get_contact(session, "kz-argali-fp").enabled
        assert get_contact(session, "uz-saiga-fp").enabled


# ------------------------------------------------------------------------------- editing --


def test_set_writes_one_history_row_per_field_and_one_audit_entry(session: Session) -> None:
    edit = set_contact(
        session,
        OFFICER,
        "tj-env",
        email=" new.env@tj.example.org ",
        names={"ru": "Комитет по охране окружающей среды"},
        language="en",
        reason="letter of 3 November",
    )

    assert edit.fields == ["email", "name.ru", "language"]
    contact = get_contact(session, "tj-env")
    assert (contact.email, contact.language, contact.updated_by) == (
        "new.env@tj.example.org",
        "en",
        "officer.one",
    )
    assert contact.name["ru"] == "Комитет по охране окружающей среды"
    assert contact.name["en"]  # the other languages stay
    history = contact_history(session, "tj-env")
    assert [c.field for c in history] == ["email", "name.ru", "language"]
    assert {c.actor for c in history} == {"officer.one"}
    assert {c.reason for c in history} == {"letter of 3 November"}
    [event] = session.scalars(select(m.AuditEvent)).all()
    assert (event.actor, event.action, event.state.code, event.reason) == (
        "officer.one",
        "contact.set",
        "TJ",
        "letter of 3 November",
    )
    assert event.details["key"] == "tj-env"
    assert event.details["changes"]["email"] == {
        "old": "environment.tj@example.org",
        "new": "new.env@tj.example.org",
    }


def test_the_address_in_a_language_is_set_with_its_history(session: Session) -> None:
    from mou.documents.letters import address_in

    edit = set_contact(
        session, OFFICER, "kz-mfa", addresses={"ru": " Астана, ул. Кунаева, 31 "}, reason="note"
    )
    assert edit.fields == ["address_ru"]
    authority = session.scalars(select(m.Authority).filter_by(key="kz-mfa")).one()
    assert address_in(authority, "ru") == "Астана, ул. Кунаева, 31"
    assert address_in(authority, "fr") == "Astana (adresse fictive)"  # the others stay
    assert [c.field for c in contact_history(session, "kz-mfa")] == ["address_ru"]
    again = set_contact(session, OFFICER, "kz-mfa", addresses={"ru": "Астана, ул. Кунаева, 31"})
    assert again.fields == []  # the same value again: nothing written
    set_contact(session, OFFICER, "kz-mfa", addresses={"ru": ""})
    assert address_in(authority, "ru") is None  # removed; the Latin one is not printed instead


def test_setting_the_values_a_contact_has_changes_and_writes_nothing(session: Session) -> None:
    set_contact(session, OFFICER, "kz-env", email="a.new@kz.example.org", person_name="A. B.")
    before = get_contact(session, "kz-env")
    rows = session.scalar(select(func.count(m.ContactChange.id)))
    events = session.scalar(select(func.count(m.AuditEvent.id)))

    again = set_contact(
        session,
        OFFICER,
        "kz-env",
        email="a.new@kz.example.org",
        person_name="A. B.",
        names={"en": before.name["en"]},
        language=before.language,
        reason="same again",
    )

    assert not again.changed
    assert session.scalar(select(func.count(m.ContactChange.id))) == rows
    assert session.scalar(select(func.count(m.AuditEvent.id))) == events
    assert get_contact(session, "kz-env").updated_at == before.updated_at
    assert disable_contact(session, OFFICER, "kz-env").changed
    assert not disable_contact(session, OFFICER, "kz-env").changed  # already disabled


@pytest.mark.parametrize(
    "email",
    [
        "",
        "no-at-sign.example.org",
        "registry@localhost",
        "Registry <registry@mfa.example.org>",
        "a@example.org, b@example.org",
        "two words@example.org",
        "регистр@mfa.example.org",
    ],
)
def test_a_bad_email_is_refused_and_nothing_changes(session: Session, email: str) -> None:
    with pytest.raises(Refused, match="is not an email address"):
        set_contact(session, OFFICER, "kz-mfa", email=email, names={"ru": "Другое имя"})
    assert get_contact(session, "kz-mfa").email == "mfa.kz@example.org"
    assert session.scalar(select(func.count(m.ContactChange.id))) == 0


def test_refusals_name_what_is_wrong(session: Session) -> None:
    with pytest.raises(Refused, match="no contact with key 'xx-mfa'"):
        set_contact(session, OFFICER, "xx-mfa", email="a@b.example.org")
    with pytest.raises(Refused, match="unknown language 'de'"):
        set_contact(session, OFFICER, "kz-mfa", language="de")
    with pytest.raises(Refused, match="English name cannot be removed"):
        set_contact(session, OFFICER, "kz-mfa", names={"en": ""})
    with pytest.raises(Refused, match="unknown instrument 'saiga-mou'"):
        set_contact(session, OFFICER, "kz-mfa", instruments=["saiga-mou"])
    new = {"email": "x@kz.example.org", "name": {"en": "X"}}
    with pytest.raises(Refused, match="unknown state 'XX'"):
        add_contact(session, OFFICER, "xx-new", state="XX", kind="focal_point", **new)
    with pytest.raises(Refused, match="unknown kind 'embassy'"):
        add_contact(session, OFFICER, "kz-new", state="KZ", kind="embassy", **new)
    with pytest.raises(Refused, match="unknown species 'tiger'"):
        add_contact(
            session, OFFICER, "kz-new", state="KZ", kind="focal_point", species="tiger", **new
        )
    with pytest.raises(Refused, match="only a focal point"):
        add_contact(
            session, OFFICER, "kz-new", state="KZ", kind="focal_ministry", species="saiga", **new
        )
    with pytest.raises(Refused, match="exists"):
        add_contact(session, OFFICER, "kz-mfa", state="KZ", kind="foreign_affairs", **new)
    with pytest.raises(NotAllowed):
        set_contact(session, Actor("reader.one", "reader"), "kz-mfa", email="a@kz.example.org")
    with pytest.raises(Refused, match="unknown state 'XX'"):
        list_contacts(session, state="XX")
    assert session.scalar(select(func.count(m.ContactChange.id))) == 0


def test_lists_filter_by_state_kind_instrument_and_enabled(session: Session) -> None:
    assert [c.key for c in list_contacts(session, state="kz")] == [
        "kz-mfa",
        "kz-env",
        "kz-nfp",
        "kz-saiga-fp",
    ]
    assert len(list_contacts(session, kind="foreign_affairs")) == 14
    assert len(list_contacts(session, instrument="bukhara-deer", kind="foreign_affairs")) == 5
    assert {c.key for c in list_contacts(session, instrument="bukhara-deer", state="TJ")} == {
        "tj-mfa",
        "tj-env",
        "tj-nfp",  # the species focal point is for CAMI only
    }
    disable_contact(session, OFFICER, "kz-nfp", reason="retired")
    assert [c.key for c in list_contacts(session, enabled=False)] == ["kz-nfp"]
    assert "kz-nfp" not in {c.key for c in list_contacts(session, enabled=True)}
    enable_contact(session, OFFICER, "kz-nfp")
    assert list_contacts(session, enabled=False) == []
    assert [c.field for c in contact_history(session, "kz-nfp")] == ["enabled", "enabled"]


def test_a_sender_is_known_by_its_current_disabled_or_former_address(session: Session) -> None:
    set_contact(session, OFFICER, "tm-env", email="nature@tm.example.org")
    disable_contact(session, OFFICER, "tm-nfp")

    assert state_of_address(session, "NATURE@tm.example.org").code == "TM"
    assert state_of_address(session, "environment.tm@example.org").code == "TM"  # former
    assert state_of_address(session, "focal.point.tm@example.org").code == "TM"  # disabled
    assert state_of_address(session, "nobody@example.org") is None


# ------------------------------------------------------------------------------- sending --


def test_a_request_made_after_a_change_goes_to_the_new_addresses(
    settings: Settings, smtp: SmtpServer
) -> None:
    prepare_database(settings)
    with session_scope(settings) as session:
        set_contact(session, OFFICER, "uz-mfa", email="registry@mfa.uz.example.org")
        set_contact(session, OFFICER, "uz-env", email="ecology@uz.example.org")
        disable_contact(session, OFFICER, "tj-env", reason="ministry merged")
    service = relay(settings, smtp)

    open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, states=["UZ", "TJ"])
    with session_scope(settings) as session:
        set_contact(session, OFFICER, "uz-env", email="second@uz.example.org")
    remind(service, DEADLINE - dt.timedelta(days=14))

    by_state: dict[str, list] = {"UZ": [], "TJ": []}
    for received in smtp.received:  # in the order sent: the request, then the reminder
        by_state["TJ" if "mfa.tj@example.org" in received.rcpt_tos else "UZ"].append(received)
    request, reminder = by_state["UZ"]
    assert addresses(request.message["To"]) == ["registry@mfa.uz.example.org"]
    assert addresses(request.message["Cc"]) == ["ecology@uz.example.org"]
    assert sorted(request.rcpt_tos) == ["ecology@uz.example.org", "registry@mfa.uz.example.org"]
    assert addresses(reminder.message["To"]) == ["second@uz.example.org"]
    assert addresses(reminder.message["Cc"]) == ["registry@mfa.uz.example.org"]
    tj_request, tj_reminder = by_state["TJ"]
    assert tj_request.rcpt_tos == ["mfa.tj@example.org"]  # no Cc: its focal ministry is off
    assert tj_reminder.rcpt_tos == ["mfa.tj@example.org"]


# ------------------------------------------------------------------------------- the CLI --


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> Iterator:
    """``mou ...`` in this process, on the test's database: (exit status, stdout, stderr)."""
    from mou import cli as cli_module

    prepare_database(settings)
    monkeypatch.setattr(cli_module, "get_settings", lambda: settings)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            status = cli_module.main(list(args))
        except SystemExit as exc:  # argparse: wrong usage
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    yield run


def test_contacts_from_the_command_line(cli, settings: Settings) -> None:
    status, out, _ = cli("contacts", "list", "--state", "KZ", "--json")
    assert status == 0
    listed = json.loads(out)
    assert [c["key"] for c in listed] == ["kz-mfa", "kz-env", "kz-nfp", "kz-saiga-fp"]
    assert listed[3]["species"] == "saiga" and listed[0]["enabled"] is True
    assert listed[0]["last_change"] is None

    args = ("contacts", "set", "kz-mfa", "--email", "registry@mfa.kz.example.org")
    status, out, _ = cli(*args, "--name-ru", "МИД Казахстана", "--reason", "note 12/2026")
    assert (status, out.strip()) == (0, "kz-mfa: changed (email, name.ru)")
    before = changes(settings)
    status, out, _ = cli(*args, "--name-ru", "МИД Казахстана")
    assert (status, out.strip()) == (0, "kz-mfa: nothing to change")
    assert changes(settings) == before

    status, out, _ = cli(
        "contacts", "add", "kz-argali-fp", "--state", "KZ", "--kind", "focal_point",
        "--species", "argali", "--email", "argali@kz.example.org",
        "--name", "Argali focal point", "--person", "A. Fictitious", "--json",
    )  # fmt: skip
    assert status == 0
    assert {c["field"] for c in json.loads(out)["changes"]} >= {"species", "email", "person.name"}
    assert cli("contacts", "disable", "kz-argali-fp", "--reason", "left")[0] == 0
    assert cli("contacts", "disable", "kz-argali-fp")[1].strip() == "kz-argali-fp: already disabled"
    assert cli("contacts", "enable", "kz-argali-fp")[0] == 0

    status, out, _ = cli("contacts", "history", "kz-mfa", "--json")
    history = json.loads(out)
    assert [(c["field"], c["new"], c["reason"]) for c in history] == [
        ("email", "registry@mfa.kz.example.org", "note 12/2026"),
        ("name.ru", "МИД Казахстана", "note 12/2026"),
    ]
    assert history[0]["actor"].startswith("cli")
    status, out, _ = cli("contacts", "history", "kz-argali-fp")
    assert [line.split()[4] for line in out.splitlines()][-2:] == ["enabled", "enabled"]
    status, out, _ = cli("contacts", "list", "--species", "argali")
    assert "argali@kz.example.org" in out and "yes" in out

    # Refused: exit 1 and one line; wrong usage: exit 2.
    for refused in (
        ("contacts", "set", "kz-mfa", "--email", "not an address"),
        ("contacts", "set", "zz-mfa", "--email", "a@zz.example.org"),
        ("contacts", "add", "kz-mfa", "--state", "KZ", "--kind", "focal_point",
         "--email", "a@kz.example.org", "--name", "Again"),
        ("contacts", "list", "--state", "XX"),
        ("contacts", "history", "zz-mfa"),
    ):  # fmt: skip
        status, _, err = cli(*refused)
        assert status == 1, refused
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert cli("contacts", "set", "kz-mfa")[0] == 2  # nothing to set
    assert cli("contacts", "set", "kz-mfa", "--language", "de")[0] == 2
    assert cli("contacts", "add", "kz-x", "--state", "KZ", "--kind", "embassy")[0] == 2
    assert cli("contacts")[0] == 2
    with session_scope(settings) as session:
        assert get_contact(session, "kz-mfa").email == "registry@mfa.kz.example.org"


def test_a_refused_contact_change_is_one_line_from_the_installed_command(
    settings: Settings, tmp_path: Path
) -> None:
    prepare_database(settings)
    env = dict(os.environ)
    env.update(MOU_VAR_DIR=str(settings.var_dir), MOU_DATABASE_URL=settings.effective_database_url)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mou"), "contacts", "set", "kz-mfa", "--email", "x@"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "mou: 'x@' is not an email address: give one address such as registry@mfa.example.org"
    ]


# ------------------------------------------------------------------------------- the annex --


def test_the_cami_summary_lists_focal_points_per_species_and_country_without_names(
    session: Session, settings: Settings
) -> None:
    disable_contact(session, OFFICER, "mn-snow-leopard-fp")
    add_contact(
        session,
        OFFICER,
        "kg-snow-leopard-fp",
        state="KG",
        kind="focal_point",
        species="snow-leopard",
        email="irbis@kg.example.org",
        name={"en": "Snow leopard focal point, Kyrgyzstan"},
        person_name="Aibek Private",
    )
    disable_contact(session, OFFICER, "np-nfp")
    cycle_id = build_cami(session).cycle.id
    session.flush()
    annex = consolidate(session, cycle_id).focal_points

    assert annex is not None
    by_species = {s.code: [p.state.code for p in found] for s, found in annex.by_species}
    assert len(by_species) == 15
    assert by_species["saiga"] == ["KZ", "UZ"]
    assert by_species["snow-leopard"] == ["KG"]  # Mongolia's is disabled
    assert by_species["argali"] == []
    national = {s.code: [p.email for p in found] for s, found in annex.national}
    assert len(national) == 14 and national["NP"] == []
    assert national["KZ"] == ["focal.point.kz@example.org"]

    consolidated = consolidate(session, cycle_id)
    html = progress_summary_html(consolidated, "en", settings)
    annex_html = html[html.index('id="annex-focal-points"') :]
    assert "Focal points per species" in annex_html and "National focal points" in annex_html
    assert "Kazakhstan, Uzbekistan" in annex_html
    assert "Species with a focal point: 3 of 15." in annex_html  # Bukhara deer, saiga, leopard
    assert "States with a national focal point: 13 of 14." in annex_html
    for private in ("irbis@kg.example.org", "Aibek Private", "focal.point.kz@example.org"):
        assert private not in html
    russian = progress_summary_html(consolidated, "ru", settings)
    assert "Приложение: координаторы по видам и по странам" in russian
    assert "Казахстан, Узбекистан" in russian
    assert "Points focaux par espèce" in progress_summary_html(consolidated, "fr", settings)

    published = progress_summary_html(
        consolidated, "en", settings.model_copy(update={"publish_focal_points": True})
    )
    assert "irbis@kg.example.org" in published and "Aibek Private" in published
    assert "focal.point.kz@example.org" in published


def test_the_bukhara_summary_has_no_focal_point_annex(session: Session, settings: Settings) -> None:
    cycle_id = build_bukhara(session).cycle.id
    session.flush()
    consolidated = consolidate(session, cycle_id)
    assert consolidated.focal_points is None
    assert "annex-focal-points" not in progress_summary_html(consolidated, "en", settings)


def test_an_address_corrected_after_the_request_gets_it_when_resent(
    settings: Settings, smtp: SmtpServer
) -> None:
    from mou.mail.delivery import deliver_pending
    from mou.secretariat.cycles import resend_request

    prepare_database(settings)
    service = relay(settings, smtp)
    cycle_id = open_and_dispatch(service, "bukhara-deer", "2025-2026", DEADLINE, ["KZ"]).cycle_id
    with session_scope(settings) as session:
        set_contact(session, OFFICER, "kz-mfa", email="registry@mfa.kz.example.org")
        assert resend_request(session, service, OFFICER, cycle_id, "KZ").changed
    with session_scope(settings) as session:  # nothing changed since: nothing sent again
        assert not resend_request(session, service, OFFICER, cycle_id, "KZ").changed
    deliver_pending(service)

    first, again = smtp.received
    assert addresses(first.message["To"]) == ["mfa.kz@example.org"]
    assert addresses(again.message["To"]) == ["registry@mfa.kz.example.org"]
    assert addresses(again.message["Cc"]) == ["environment.kz@example.org"]
    assert str(first.message["Subject"]) == str(again.message["Subject"])  # the same reference
