"""Scan geometry: jittered raster lattices, the split along y, and measured overlap.

Every view of a dose is a raster at its own step ``(1 − f)·D`` over the same scanned region;
the dose's scan is the union of the views' lattices, simulated once (Phase C), and a view is
selected by its lattice id (Phase D). Rows are placed symmetrically about the object's
midline (at ±(k + ½)·step), so the split along y is exact whatever the jitter, and the number
of positions of every view and split follows from the config alone.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree


def half_lattice_count(half_span: float, step: float) -> int:
    """Nodes on one side of the midline at ±(k + ½)·step that fit within ``half_span``."""
    if step <= 0:
        raise ValueError(f"scan step must be positive, got {step}")
    return max(int(math.floor(half_span / step + 0.5)), 0)


def lattice_axis(center: float, m: int, step: float) -> np.ndarray:
    """The 2m coordinates centre ± (k + ½)·step, ascending."""
    k = np.arange(m) + 0.5
    return np.concatenate([center - k[::-1] * step, center + k * step])


def jittered_raster(
    center: float, half_span: float, step: float, jitter: float, rng: np.random.Generator
) -> np.ndarray:
    """Positions (n, 2) as (x, y) of a square raster with uniform jitter of ±jitter·step per axis.

    The jitter is drawn inside ``half_span`` (the caller reserves it) and below step/2, so no
    position crosses the midline. Ordered row by row (y, then x).
    """
    m = half_lattice_count(half_span, step)
    axis = lattice_axis(center, m, step)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return pos + rng.uniform(-jitter * step, jitter * step, size=pos.shape)


def split_mask(ycoords: np.ndarray, midline: float, split: str) -> np.ndarray:
    """Train: y below the object's midline; test: the rest (DESIGN §3)."""
    if split == "train":
        return ycoords < midline
    if split == "test":
        return ycoords >= midline
    raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")


def disc_overlap_fraction(distance: np.ndarray, diameter: float) -> np.ndarray:
    """Area of intersection of two discs of ``diameter`` at ``distance``, over one disc's area."""
    r = diameter / 2.0
    d = np.clip(np.asarray(distance, dtype=np.float64), 0.0, 2 * r)
    lens = 2 * r**2 * np.arccos(d / (2 * r)) - 0.5 * d * np.sqrt(np.maximum(4 * r**2 - d**2, 0.0))
    return lens / (np.pi * r**2)


def measured_overlap(positions: np.ndarray, diameter: float) -> dict:
    """Mean linear overlap ``1 − d/D`` and mean disc-area overlap to each position's nearest neighbour."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return {"n_positions": int(len(positions)), "linear": float("nan"), "area": float("nan")}
    d, _ = cKDTree(positions).query(positions, k=2)
    nn = d[:, 1]
    return {
        "n_positions": int(len(positions)),
        "probe_diameter_px": float(diameter),
        "mean_nn_distance_px": float(nn.mean()),
        "linear": float(np.mean(1.0 - nn / diameter)),
        "area": float(np.mean(disc_overlap_fraction(nn, diameter))),
    }
