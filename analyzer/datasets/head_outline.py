"""A head's outline on a face crop: how the simulator cuts a head from a photo, and training's head mask."""

from __future__ import annotations

import numpy as np


def head_alpha(height: int, width: int, power: float, feather: float = 0.06) -> np.ndarray:
    """A head outline filling a height x width patch: 1 inside, 0 outside, feathered over ``feather`` of the radius.

    The simulator cuts face crops with it, and the network's optional input
    mask (``analyzer.train.model.HeadOutline``) is the same shape.
    """
    u = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    v = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
    radius = superellipse_radius(u[None, :], v[:, None], power)
    return np.clip((1.0 - radius) / feather, 0.0, 1.0).astype(np.float32)


def superellipse_radius(u: np.ndarray, v: np.ndarray, power: float) -> np.ndarray:
    """Where each point lies against a head outline: 1 on it, below 1 inside.

    ``u`` and ``v`` are offsets from the centre in half-axes. Power 2 is an
    ellipse; higher powers are squarer, as hair reaching into the corners
    makes a head. Training (``analyzer.train.augment``) cuts heads with the
    same outline that the simulator draws them with.
    """
    return (np.abs(u) ** power + np.abs(v) ** power) ** (1.0 / power)
