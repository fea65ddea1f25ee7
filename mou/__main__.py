"""``python -m mou``: the same as the ``mou`` command."""

from mou.cli import main

raise SystemExit(main())
