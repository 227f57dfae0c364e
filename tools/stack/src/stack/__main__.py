"""``python -m stack``: the same as the ``stack`` command."""

from stack.cli import main

raise SystemExit(main())
