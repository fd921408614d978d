"""The ``analyzer`` console script and ``python -m analyzer``.

The command line is imported inside :func:`main`, so a Ctrl-C that lands
while it loads is the one line ``interrupted`` (exit 130), not a traceback.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Import the command line and run it."""
    try:
        from analyzer.cli import main as run_command_line
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return run_command_line()


if __name__ == "__main__":
    raise SystemExit(main())
