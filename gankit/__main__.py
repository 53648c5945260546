"""`python -m gankit` is the same front door as the `gankit` command."""

from gankit.cli import main

raise SystemExit(main())
