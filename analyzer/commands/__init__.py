"""The ``analyzer`` subcommands, one module each.

Each module has ``add_parser(subparsers)`` (its options, with examples in its
help) and ``run(args)``. Modules import only light libraries at the top, so a
Ctrl-C while the console script starts meets :func:`analyzer.cli.main`; each
``run`` imports what its command needs.
"""
