"""Where the data the code reads at run time lives: forms, templates (with fonts and
catalogues of translations), the reference catalogue, migrations and the flows.

In a checkout (and an editable install) these are the project's top-level folders beside
``mou/``. A built wheel carries copies of them inside the package, under ``mou/_data/``
(``setup.py`` puts them there), so an installed service finds them through
``importlib.resources`` wherever it runs from.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_root() -> Path:
    """The folder holding ``forms/``, ``templates/``, ``db/`` and ``flows/``."""
    bundled = Path(str(files("mou") / "_data"))
    if (bundled / "forms").is_dir():
        return bundled
    return Path(__file__).resolve().parent.parent
