"""Build step only: a wheel carries the data folders the code reads at run time.

``forms/``, ``templates/``, ``db/`` (catalogue and migrations) and ``flows/`` stay at the top
of the checkout, where people edit them; a (non-editable) build copies them into
``mou/_data/``, where ``mou.resources.data_root`` finds them. Everything else is in
pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA_FOLDERS = ("forms", "templates", "db", "flows")
# Tools that converted the source document, and caches, are not run-time data.
LEAVE_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "tools")


class BuildWithData(build_py):
    def run(self) -> None:
        # A build folder left from an earlier build may hold modules deleted since.
        shutil.rmtree(Path(self.build_lib) / "mou", ignore_errors=True)
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders themselves
        target = Path(self.build_lib) / "mou" / "_data"
        for name in DATA_FOLDERS:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(HERE / name, target / name, ignore=LEAVE_OUT)


setup(cmdclass={"build_py": BuildWithData})
