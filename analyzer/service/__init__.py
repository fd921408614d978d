"""Service plumbing: console, liveness and systemd, atomic files, output locks, model assets, cores.

Imports only :mod:`analyzer.core`.
"""
