"""Offline tools behind the subcommands: simulate, score, accuracy, bench, evaluate, check, listen.

Nothing in the runtime imports them.
"""
