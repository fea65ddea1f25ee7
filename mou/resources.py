"""Where the data the code reads at run time lives: forms, templates (with fonts and
catalogues of translations), the reference catalogue, migrations and the flows.

In a checkout (and an editable install) these are the project's top-level folders beside
``mou/``. A built wheel carries copies of them inside the package, under ``mou/_data/``
(``setup.py`` puts them there), so an installed service finds them through
``importlib.resources`` wherever it runs from.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def _bundled() -> Path:
    return Path(str(files("mou") / "_data"))


def installed() -> bool:
    """True for an installed wheel, False for a checkout (or an editable install of one)."""
    return (_bundled() / "forms").is_dir()


def data_root() -> Path:
    """The folder holding ``forms/``, ``templates/``, ``db/`` and ``flows/``."""
    return _bundled() if installed() else Path(__file__).resolve().parent.parent


def default_var_dir() -> Path:
    """Where the service keeps its own files when ``MOU_VAR_DIR`` is not set.

    A checkout keeps them in its ``var/`` (what ``make run`` uses). An installed service uses
    one folder per user, ``$XDG_DATA_HOME/mou-reporting`` (``~/.local/share/mou-reporting``),
    never the directory it happens to be started from: started from ``/`` that would be the
    system's ``/var``, and from anywhere else a new empty database and a new secret.
    """
    if not installed():
        return data_root() / "var"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mou-reporting"
