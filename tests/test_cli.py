"""The `mou` command as a user types it: exit 0 success, 1 refused input, 2 wrong usage;
never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_workbook import bukhara_answers
from tests.workbooks import fill

MOU = str(Path(sys.executable).parent / "mou")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


def mou(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOU_", "PREFECT_API"))}
    env["MOU_VAR_DIR"] = str(workdir / "var")
    result = subprocess.run(
        [MOU, *args], capture_output=True, text=True, env=env, cwd=workdir, timeout=300
    )
    assert "Traceback" not in result.stderr + result.stdout
    return result


def test_a_cycle_from_the_command_line(workdir: Path) -> None:
    assert mou(workdir, "db", "upgrade").returncode == 0
    opened = mou(
        workdir,
        "cycle",
        "open",
        "bukhara-deer",
        "--period",
        "2025-2026",
        "--deadline",
        "2027-03-31",
        "--json",
    )
    assert opened.returncode == 0, opened.stderr
    cycle = json.loads(opened.stdout)
    assert cycle["created"] and sorted(cycle["dispatched"]) == ["AF", "KZ", "TJ", "TM", "UZ"]
    again = json.loads(
        mou(
            workdir,
            "cycle",
            "open",
            "bukhara-deer",
            "--period",
            "2025-2026",
            "--deadline",
            "2027-03-31",
            "--json",
        ).stdout
    )
    assert again["id"] == cycle["id"] and not again["created"] and again["dispatched"] == []
    assert len(list((workdir / "var" / "outbox").glob("request_*.eml"))) == 5

    template = workdir / "kz.xlsx"
    made = mou(
        workdir,
        "template",
        "bukhara-deer",
        "KZ",
        "--cycle",
        str(cycle["id"]),
        "--lang",
        "ru",
        "-o",
        str(template),
    )
    assert made.returncode == 0, made.stderr
    keyed = {"threats", "action_plan_implementation"}
    good = workdir / "kz-filled.xlsx"
    good.write_bytes(fill(template.read_bytes(), bukhara_answers("ru"), keyed=keyed))
    accepted = mou(workdir, "submit", str(good), "--json")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert json.loads(accepted.stdout)["status"] == "accepted"

    answers = bukhara_answers("ru")
    answers["national_total"] = "около 2000"
    answers["reporting_institution"] = None
    bad = workdir / "kz-bad.xlsx"
    bad.write_bytes(fill(template.read_bytes(), answers, keyed=keyed))
    refused = mou(workdir, "submit", str(bad))
    assert refused.returncode == 1
    assert "REJECTED" in refused.stdout and "обязательно" in refused.stdout

    swept = json.loads(mou(workdir, "sweep", "--older-than", "0", "--json").stdout)
    assert swept["ingested"] == [] and swept["emails_pending"] == 0

    status = json.loads(mou(workdir, "status", str(cycle["id"]), "--json").stdout)
    kz = next(s for s in status["states"] if s["state"] == "KZ")
    assert (kz["outcome"], kz["submissions"], kz["on_time"]) == ("accepted", 2, True)
    assert status["summary"]["not received"] == 4

    for suffix in ("xlsx", "csv", "json"):
        out = workdir / f"export.{suffix}"
        assert mou(workdir, "export", str(cycle["id"]), "-o", str(out)).returncode == 0
        assert out.stat().st_size > 0
    pdf = workdir / "summary.pdf"
    assert mou(workdir, "report", str(cycle["id"]), "--lang", "ru", "-o", str(pdf)).returncode == 0
    assert pdf.read_bytes().startswith(b"%PDF")


def test_refusals_are_one_line_and_exit_1(workdir: Path) -> None:
    cases = [
        ("submit", str(workdir / "no-such-file.xlsx")),
        ("export", "1", "-o", str(workdir / "out.docx")),
        ("status", "999"),
        ("template", "bukhara-deer", "MN", "--cycle", "1", "--lang", "en", "-o", "x.xlsx"),
        ("cycle", "open", "bukhara-deer", "--period", "2026", "--deadline", "2027-01-01"),
        ("cycle", "open", "saiga", "--period", "2025-2026", "--deadline", "2027-01-01"),
        ("worker",),  # no PREFECT_API_URL: the warm worker has no tasks to serve
    ]
    for args in cases:
        result = mou(workdir, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # Cycle 1 (bukhara-deer 2025-2026, all states, deadline 2027-03-31) exists: opening it
    # with another deadline or another state changes nothing and names what does.
    moved = mou(
        workdir,
        "cycle",
        "open",
        "bukhara-deer",
        "--period",
        "2025-2026",
        "--deadline",
        "2027-04-30",
    )
    assert moved.returncode == 1 and len(moved.stderr.strip().splitlines()) == 1
    assert "deadline 2027-03-31" in moved.stderr
    assert "mou cycle extend 1 --deadline 2027-04-30 --reason" in moved.stderr
    early = mou(
        workdir, "cycle", "open", "cami", "--period", "2024-2026", "--deadline", "2026-01-31"
    )
    assert early.returncode == 1 and "before today" in early.stderr
    future = mou(
        workdir, "cycle", "open", "cami", "--period", "2031-2032", "--deadline", "2033-06-30"
    )
    assert future.returncode == 1 and "has not started" in future.stderr
    assert "set PREFECT_API_URL" in mou(workdir, "worker").stderr
    # Cycle 1 is a Bukhara cycle: a CAMI template for it would be the wrong workbook.
    wrong = mou(workdir, "template", "cami", "KZ", "--cycle", "1", "--lang", "ru", "-o", "c.xlsx")
    assert wrong.returncode == 1 and "is a bukhara-deer cycle" in wrong.stderr
    assert not (workdir / "c.xlsx").exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (None, "run `mou db upgrade`"),  # a database nobody set up yet
        ("postgresql://nobody@127.0.0.1:1/nowhere", "cannot reach the database"),
        ("nonsense://", "is not a database URL"),
    ],
)
def test_a_database_that_cannot_answer_says_what_to_do_in_one_line(
    tmp_path: Path, url: str | None, says: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOU_", "PREFECT_API"))}
    env["MOU_VAR_DIR"] = str(tmp_path / "var")
    if url:
        env["MOU_DATABASE_URL"] = url
    for args in (("status", "1"), ("catalogue",), ("export", "1", "-o", "x.json")):
        result = subprocess.run(
            [MOU, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert says in result.stderr


def test_wrong_usage_exits_2(workdir: Path) -> None:
    assert mou(workdir, "cycle", "open", "bukhara-deer").returncode == 2
    assert (
        mou(workdir, "template", "cami", "MN", "--cycle", "1", "--lang", "de", "-o", "x").returncode
        == 2
    )


def test_a_file_over_the_limit_is_kept_whole_up_to_the_hard_cap(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOU_", "PREFECT_API"))}
    env.update(
        MOU_VAR_DIR=str(tmp_path / "var"), MOU_MAX_UPLOAD_BYTES="1000", MOU_MAX_KEPT_BYTES="5000"
    )

    def mou_here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MOU, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )

    assert mou_here("db", "upgrade").returncode == 0
    big = tmp_path / "big.xlsx"
    big.write_bytes(b"PK" + b"x" * 2998)  # over the limit, under the cap
    refused = mou_here("submit", str(big), "--json")
    assert refused.returncode == 1
    assert [e["code"] for e in json.loads(refused.stdout)["errors"]] == ["file_too_large"]
    stored = list((tmp_path / "var" / "files").rglob("*"))
    assert [p.stat().st_size for p in stored if p.is_file()] == [3000]  # whole, not a prefix
    huge = tmp_path / "huge.xlsx"
    huge.write_bytes(b"PK" + b"x" * 5998)
    capped = mou_here("submit", str(huge))
    assert capped.returncode == 1 and "nothing was recorded" in capped.stderr
    assert len(capped.stderr.strip().splitlines()) == 1
    assert [p for p in (tmp_path / "var" / "files").rglob("*") if p.is_file()] == [
        p for p in stored if p.is_file()
    ]
