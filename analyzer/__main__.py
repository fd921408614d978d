"""Allow ``python -m analyzer``."""

from analyzer.cli import main

raise SystemExit(main())
