"""Scan geometry: jittered raster lattices and measured overlap.

Every view of a split is a square raster of ``scan.grid`` × ``scan.grid`` positions at its own
step ``(1 − f)·D``, centred on the split's object; the split's scan is the union of the views'
rasters, simulated once per dose (Phase C), and a view is selected by its lattice id (Phase D).
Every view therefore has the same number of patterns: a sparser view scans a larger field.
The number of positions of every view and split follows from the config alone.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def lattice_axis(center: float, grid: int, step: float) -> np.ndarray:
    """The ``grid`` coordinates ``center + (k − (grid − 1)/2)·step``, ascending."""
    if step <= 0:
        raise ValueError(f"scan step must be positive, got {step}")
    return center + (np.arange(grid) - (grid - 1) / 2.0) * step


def jittered_raster(center: float, grid: int, step: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Positions (grid², 2) as (x, y) of a square raster centred on (center, center), with
    uniform jitter of ±jitter·step per axis. Ordered row by row (y, then x)."""
    axis = lattice_axis(center, grid, step)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    pos = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return pos + rng.uniform(-jitter * step, jitter * step, size=pos.shape)


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


def fluence_per_area(positions: np.ndarray, dose: float) -> float:
    """Photons per object pixel² of a raster scan: ``dose · n / area``, the area being the
    positions' bounding box grown by one mean nearest-neighbour step (``(g·s)²`` for a g × g
    raster of step s, so dose / s²)."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 2:
        return float("nan")
    d, _ = cKDTree(positions).query(positions, k=2)
    step = float(d[:, 1].mean())
    span = np.ptp(positions, axis=0) + step
    return float(dose) * len(positions) / float(span[0] * span[1])


def footprint_overlap_fraction(coords_relative: np.ndarray, diameter: float) -> float:
    """Fraction of group members whose probe footprint (a disc of ``diameter``) overlaps the
    footprint of at least one other member of their group: the members the PINN's overlap
    constraint can tie together. ``coords_relative (G, C, 2)``; NaN for C = 1."""
    rel = np.asarray(coords_relative, dtype=np.float64)
    if rel.ndim != 3 or rel.shape[1] < 2 or not len(rel):
        return float("nan")
    d = np.linalg.norm(rel[:, :, None, :] - rel[:, None, :, :], axis=-1)
    d[:, np.arange(rel.shape[1]), np.arange(rel.shape[1])] = np.inf
    return float(np.mean(d.min(axis=2) < diameter))
