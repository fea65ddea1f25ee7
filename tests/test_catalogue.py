"""Migrations and the reference catalogue, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from mou.catalogue.bootstrap import prepare_database
from mou.catalogue.reference import activity_sort_key, describe, read_catalogue
from mou.errors import Refused
from mou.settings import Settings
from mou.store import models as m
from mou.store.database import get_engine, session_scope

CATALOGUE = Path(__file__).resolve().parent.parent / "db" / "catalogue"


def _row_counts(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in m.Base.metadata.sorted_tables
        }


def test_upgrade_creates_schema_and_is_idempotent(settings: Settings) -> None:
    first = prepare_database(settings)
    counts = _row_counts(settings)
    second = prepare_database(settings)

    catalogue = {"instruments": 2, "states": 14, "species": 15, "activities": 121, "contacts": 47}
    assert {k: v for k, v in first.items() if not k.startswith("contacts_")} == catalogue
    assert len(first["contacts_added"]) == 47
    assert second == {
        **catalogue,
        "contacts_added": [],
        "contacts_disabled": [],
        "contacts_enabled": [],
    }
    assert _row_counts(settings) == counts
    tables = set(inspect(get_engine(settings)).get_table_names())
    assert set(m.Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_catalogue_content(session) -> None:
    data = describe(session)
    instruments = {i["code"]: i for i in data["instruments"]}
    assert set(instruments) == {"bukhara-deer", "cami"}
    bukhara = instruments["bukhara-deer"]
    assert sorted(bukhara["range_states"]) == ["AF", "KZ", "TJ", "TM", "UZ"]
    assert sorted(bukhara["signatories"]) == ["KZ", "TJ", "TM", "UZ"]
    assert bukhara["languages"] == ["en", "ru"]
    assert bukhara["cycle_months"] == 24
    assert len(instruments["cami"]["range_states"]) == 14
    assert instruments["cami"]["cycle_months"] == 30
    assert len(data["species"]) == 15
    assert {s["code"] for s in data["range_states"]} >= {"KZ", "TJ", "TM", "UZ", "AF", "MN", "CN"}
    for state in data["range_states"]:
        assert set(state["name"]) == {"en", "ru", "fr"}, state["code"]


def test_every_state_has_ministries_with_fictitious_addresses(session) -> None:
    by_state: dict[str, set[str]] = {}
    for authority in describe(session)["authorities"]:
        by_state.setdefault(authority["state"], set()).add(authority["kind"])
        assert authority["email"].endswith("@example.org")
    assert len(by_state) == 14
    for state, kinds in by_state.items():
        assert {"foreign_affairs", "focal_ministry"} <= kinds, state


def test_programme_of_work_has_121_activities_in_order(session) -> None:
    activities = [a for a in describe(session)["activities"] if a["instrument"] == "cami"]
    codes = [a["code"] for a in activities]
    assert len(codes) == 121
    assert len(set(codes)) == 121
    assert codes == sorted(codes, key=activity_sort_key)
    assert codes[0] == "1.1.1"
    assert codes[-1] == "4.3.1"
    assert {a["objective"] for a in activities} == {"1", "2", "3", "4"}
    for activity in activities:
        assert activity["text"]["fr"] and activity["text"]["en"], activity["code"]
        assert activity["code"].startswith(activity["issue"] + "."), activity["code"]


def test_programme_of_work_file_keeps_source_wording() -> None:
    programme = read_catalogue(CATALOGUE).programmes[0]
    by_code = {a.code: a for a in programme.activities}
    # 1.3.1 carries per-letter priorities in the source; the level says so, the wording stays.
    assert by_code["1.3.1"].priority.level == "mixed"
    assert "Haute" in by_code["1.3.1"].priority.source
    assert by_code["1.1.1"].priority.level in {"high", "high_medium", "medium", "medium_low", "low"}


def _broken_catalogue(tmp_path: Path, name: str, content: str) -> Path:
    directory = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE, directory)
    (directory / name).write_text(content, encoding="utf-8")
    return directory


def test_malformed_catalogue_file_is_refused_with_its_place(tmp_path: Path) -> None:
    directory = _broken_catalogue(tmp_path, "states.yaml", "states:\n  - code: [unclosed\n")
    with pytest.raises(Refused, match=r"states.yaml is not valid YAML at line \d+"):
        read_catalogue(directory)


def test_catalogue_with_unknown_reference_is_refused(tmp_path: Path) -> None:
    text = (CATALOGUE / "authorities.yaml").read_text(encoding="utf-8")
    directory = _broken_catalogue(
        tmp_path, "authorities.yaml", text.replace("state: KZ", "state: XX", 1)
    )
    with pytest.raises(Refused, match="unknown state XX"):
        read_catalogue(directory)


def _mou(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "mou"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["MOU_VAR_DIR"] = str(tmp_path / "var")
    env.pop("MOU_DATABASE_URL", None)
    return env


def test_cli_upgrade_then_catalogue_json(cli_env: dict[str, str]) -> None:
    assert _mou("db", "upgrade", env=cli_env).returncode == 0
    again = _mou("db", "upgrade", env=cli_env)
    assert again.returncode == 0, again.stderr
    result = _mou("catalogue", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["instruments"]) == 2
    assert len(data["range_states"]) == 14
    assert len(data["species"]) == 15
    assert len(data["activities"]) == 121


def test_cli_unreachable_database_is_one_line_exit_1(cli_env: dict[str, str]) -> None:
    cli_env["MOU_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/nowhere"
    result = _mou("db", "upgrade", env=cli_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach the database" in result.stderr


def test_cli_malformed_catalogue_is_one_line_exit_1(tmp_path: Path, cli_env) -> None:
    root = tmp_path / "project"
    shutil.copytree(CATALOGUE.parent.parent / "db", root / "db")
    (root / "db" / "catalogue" / "species.yaml").write_text("species: {not: [a list", "utf-8")
    cli_env["MOU_DATA_ROOT"] = str(root)
    result = _mou("db", "upgrade", env=cli_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "species.yaml" in result.stderr


def test_cli_wrong_usage_exits_2(cli_env: dict[str, str]) -> None:
    assert _mou("catalogue", "--no-such-flag", env=cli_env).returncode == 2
    assert _mou("no-such-command", env=cli_env).returncode == 2
