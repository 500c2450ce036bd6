"""Phase C files: simulate one dose, split along y, write and validate the canonical NPZs."""

from __future__ import annotations

import logging

import numpy as np

from . import geometry, io
from .config import SPLITS, StudyPlan, load_probe
from .simulate import make_object, simulate_amplitudes

log = logging.getLogger(__name__)

PHASE_C_KEYS = ("diffraction", "xcoords", "ycoords", "probeGuess", "objectGuess", "scan_index", "dose", "N")


def load_object(plan: StudyPlan) -> np.ndarray:
    """Ground-truth object: ``objectGuess`` of the user's NPZ, or the synthetic one (seeded)."""
    path = plan.raw.get("object", {}).get("path")
    if path:
        obj = io.load_npz(path, required=("objectGuess",))["objectGuess"].astype(np.complex64)
        amp = np.abs(obj)
        if not np.all(np.isfinite(obj)) or amp.max() > 1.0 + 1e-6:
            raise io.DataError(f"{path}: key 'objectGuess' must be finite with amplitude in (0, 1]")
        return obj
    return make_object(plan.object_size, plan.seeds["simulation"])


def simulate_dose(plan: StudyPlan, dose: int) -> dict:
    """Simulate the dose's whole scan (the union of the views' rasters) and split it along y.

    Returns ``{split: arrays}`` in the Phase C layout (docs/contracts.md). Object, probe shape
    and positions depend only on ``seeds.simulation``; the Poisson draw on (seed, dose).
    """
    obj = load_object(plan)
    probe = load_probe(plan.probe, plan.N)
    positions, lattice = plan.scan_positions()
    rng = np.random.default_rng([plan.seeds["simulation"], int(dose)])
    amplitudes, scaled_probe = simulate_amplitudes(obj, probe, positions, float(dose), rng)
    log.info(
        "dose %d: %d patterns, mean total counts %.1f",
        dose,
        len(positions),
        float(np.mean(np.sum(amplitudes.astype(np.float64) ** 2, axis=(1, 2)))),
    )
    out = {}
    for split in SPLITS:
        mask = geometry.split_mask(positions[:, 1], plan.midline, split)
        idx = np.flatnonzero(mask)
        out[split] = dict(
            diffraction=amplitudes[idx],
            xcoords=positions[idx, 0],
            ycoords=positions[idx, 1],
            probeGuess=scaled_probe,
            objectGuess=obj,
            scan_index=idx.astype(np.int64),
            lattice=lattice[idx],
            view_names=np.array(plan.view_names),
            dose=np.int64(dose),
            N=np.int64(plan.N),
            seed_simulation=np.int64(plan.seeds["simulation"]),
            probe_diameter=np.float64(plan.probe_diameter),
            midline=np.float64(plan.midline),
        )
    return out


def write_phase_c(plan: StudyPlan, dose: int, paths: dict) -> dict:
    """Simulate ``dose`` and write ``paths[split]`` for train and test; returns the arrays."""
    data = simulate_dose(plan, dose)
    for split in SPLITS:
        io.save_npz(paths[split], **data[split])
    return data


def validate_phase_c(path, data: dict | None = None, dose_tolerance: float = 0.15) -> dict:
    """Check a canonical Phase C file; raise DataError naming the file and key on any violation.

    Beyond keys, dtypes and lengths, the diffraction must be amplitudes: finite, ≥ 0, and the
    mean total Σ amplitude² per pattern must match the stored dose (intensities stored by
    mistake give Σ counts², far above it).
    """
    d = io.load_npz(path, required=PHASE_C_KEYS) if data is None else data
    diff = d["diffraction"]
    io.check_array(path, "diffraction", diff, dtype=np.float32, ndim=3)
    n = int(d["N"])
    io.check_array(path, "diffraction", diff, shape=(None, n, n))
    io.check_amplitudes(path, "diffraction", diff)
    npos = diff.shape[0]
    for key in ("xcoords", "ycoords"):
        io.check_array(path, key, d[key], dtype=np.float64, shape=(npos,))
        if not np.all(np.isfinite(d[key])):
            raise io.DataError(f"{path}: key '{key}' contains NaN or infinite positions")
    io.check_array(path, "scan_index", d["scan_index"], shape=(npos,))
    io.check_array(path, "probeGuess", d["probeGuess"], dtype=np.complex64, shape=(n, n))
    io.check_array(path, "objectGuess", d["objectGuess"], dtype=np.complex64, ndim=2)
    dose = float(d["dose"])
    if dose <= 0:
        raise io.DataError(f"{path}: key 'dose' is {dose}; expected a positive photon count")
    if npos:
        # a few patterns per split: allow the sample spread of per-pattern totals
        tol = dose_tolerance + 3.0 / np.sqrt(npos)
        io.check_counts(path, diff, dose, 1.0 - tol, 1.0 + tol)
    return d
