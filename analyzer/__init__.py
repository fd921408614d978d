"""Footfall analyzer: entrance cameras in, visitor demographics out."""

from pathlib import Path

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parents[1]  # configs/ and engines/ live here
