"""``python -m yolactpp``: the same as the ``yolactpp`` command."""

from yolactpp.cli import main

raise SystemExit(main())
