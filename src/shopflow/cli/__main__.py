"""``python -m shopflow.cli`` is the same as the ``shopflow`` script."""

from __future__ import annotations

from shopflow.cli import main

raise SystemExit(main())
