"""Allows ``python -m selfbake``."""

from selfbake.cli import main

raise SystemExit(main())
