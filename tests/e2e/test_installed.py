"""A built wheel, installed (not editable) into a fresh virtual environment and run from a
directory that is not the checkout, finds its forms, templates, catalogue and migrations.

The third-party packages come from the project's own environment (PYTHONPATH), so the test
needs no download; ``mou`` itself can only come from the wheel: the editable install's path
hook is not read from PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(600)


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("installed")
    # Built from a copy of the project's files: nothing of the checkout's own build/ (which
    # may hold modules deleted since) goes in, and the checkout is left as it was.
    source = base / "source"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = base / "wheels"
    built = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        cwd=base,
        env=dict(os.environ),
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("mou_reporting-*.whl")
    environment = base / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    target = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=base,
        env={"PATH": os.environ["PATH"]},
    ).stdout.strip()
    installed = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", target, str(wheel)],
        cwd=base,
        env=dict(os.environ),
    )
    assert installed.returncode == 0, installed.stderr
    env = {
        "PATH": f"{environment / 'bin'}:{os.environ['PATH']}",
        "PYTHONPATH": sysconfig.get_paths()["purelib"],  # the dependencies, not mou
        "MOU_VAR_DIR": str(base / "work" / "var"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "HOME": str(base),
    }
    (base / "work").mkdir()
    return python, env


def test_the_installed_package_runs_a_return_from_any_directory(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    python, env = installed
    where = _run(
        [str(python), "-c", "import mou, mou.resources as r; print(r.data_root())"],
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(python.parent.parent), where.stdout
    assert not Path(where.stdout.strip()).is_relative_to(ROOT)

    def mou(*args: str) -> subprocess.CompletedProcess[str]:
        return _run([str(python), "-m", "mou", *args], cwd=tmp_path, env=env)

    assert mou("db", "upgrade").returncode == 0
    opened = mou(
        "cycle", "open", "bukhara-deer", "--period", "2025-2026", "--deadline", "2027-03-31"
    )
    assert opened.returncode == 0, opened.stderr
    template = mou(
        "template", "bukhara-deer", "KZ", "--cycle", "1", "--lang", "ru", "-o", "kz.xlsx"
    )
    assert template.returncode == 0, template.stderr
    # A return filled by the package's own synthetic typist, from the installed data.
    filled = _run(
        [
            str(python),
            "-c",
            "import random; from mou.settings import Settings; "
            "from mou.demo.synthetic import synthetic_return; "
            "r = synthetic_return(Settings(), 1, 'KZ', random.Random(7), language='ru'); "
            "open('kz-filled.xlsx', 'wb').write(r.data)",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert filled.returncode == 0, filled.stderr
    submitted = mou("submit", "kz-filled.xlsx", "--sender", "focal@example.org")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "ACCEPTED" in submitted.stdout
    report = mou("report", "1", "--lang", "ru", "-o", "summary.pdf")
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "summary.pdf").read_bytes().startswith(b"%PDF-")
    # What `mou serve` serves: the deployments, their flows found inside the package, and
    # the warm workers' background tasks.
    deployments = _run(
        [
            str(python),
            "-c",
            "from mou.settings import Settings; from mou.service.deployments import "
            "build_deployments; print(sorted(d.name for d in build_deployments(Settings()))); "
            "from mou.service.tasks import DECIDE, RECEIPTS, SUMMARIES, prefect_task; "
            "print([prefect_task(n).name for n in (DECIDE, RECEIPTS, SUMMARIES)])",
        ],
        cwd=tmp_path,
        env=env,
    )
    assert deployments.returncode == 0, deployments.stderr
    assert "sweep" in deployments.stdout and "send-reminders" in deployments.stdout
    assert "decide-waiting-returns" in deployments.stdout


def test_the_installed_package_keeps_its_files_per_user_wherever_it_is_started(
    installed: tuple[Path, dict[str, str]],
) -> None:
    python, env = installed
    env = {k: v for k, v in env.items() if k != "MOU_VAR_DIR"}
    upgraded = _run([str(python), "-m", "mou", "db", "upgrade"], cwd=Path("/"), env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    per_user = Path(env["HOME"]) / ".local" / "share" / "mou-reporting"
    assert (per_user / "mou.sqlite3").is_file() and (per_user / "secret").is_file()
