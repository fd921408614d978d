"""Footfall analyzer: entrance cameras in, visitor demographics out."""

__version__ = "0.1.0"
