"""scripts/system-packages, as make and CI run it: nothing when the libraries are there, the
one command to run when they are not and it may not install them itself."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system-packages"


def fake_tools(folder: Path, *, libraries_found: bool, uid: int) -> dict[str, str]:
    folder.mkdir()
    tools = {
        # The script asks Python's ctypes where each library is.
        "python3": "#!/bin/sh\nexit 0\n" if libraries_found else "#!/bin/sh\nexit 1\n",
        "id": f"#!/bin/sh\necho {uid}\n",
        "apt-get": '#!/bin/sh\necho apt-get "$@" >> "$APT_LOG"\n',
    }
    for name, text in tools.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin", "APT_LOG": str(folder / "apt.log")}


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT)], env={**os.environ, **env}, capture_output=True, text=True
    )


def test_nothing_happens_when_the_libraries_are_there(tmp_path: Path) -> None:
    env = fake_tools(tmp_path / "bin", libraries_found=True, uid=1000)
    result = run(env)
    assert result.returncode == 0 and result.stderr == ""
    assert not Path(env["APT_LOG"]).exists()


def test_without_root_it_prints_the_one_command_and_stops(tmp_path: Path) -> None:
    env = fake_tools(tmp_path / "bin", libraries_found=False, uid=1000)
    result = run(env)
    assert result.returncode == 1
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends" in (
        result.stderr
    )
    for package in ("libpango-1.0-0", "libharfbuzz-subset0", "libfontconfig1"):
        assert package in result.stderr
    assert not Path(env["APT_LOG"]).exists()  # nothing installed behind the user's back


def test_as_root_it_installs_them_without_asking(tmp_path: Path) -> None:
    env = fake_tools(tmp_path / "bin", libraries_found=False, uid=0)
    result = run(env)
    assert result.returncode == 0, result.stderr
    calls = Path(env["APT_LOG"]).read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install -y -qq --no-install-recommends")
    assert "libharfbuzz-subset0" in calls[1]
