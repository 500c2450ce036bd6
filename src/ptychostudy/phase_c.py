"""Phase C files: simulate one dose for the three splits and write the canonical NPZs.

Each split (train, validation, test) has its own object, drawn from one generator with its own
seed (:func:`ptychostudy.config.split_seed`), scanned by every view's raster (the union is one
scan, simulated once per dose). The probe is scaled once per dose, over all splits' patterns,
so every split sees the same beam. A split's diffraction is streamed to its file in batches:
the job holds the objects and one batch of patterns, never a split.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from . import io
from .config import SPLITS, ScanGeometry, load_probe, object_key, split_seed
from .simulate import amplitude_batches, dose_scaled_probe, illumination_totals, make_object

log = logging.getLogger(__name__)

PHASE_C_KEYS = ("diffraction", "xcoords", "ycoords", "probeGuess", "objectGuess", "scan_index", "dose", "N")
#: patterns simulated (and held) at a time
BATCH = 256


def load_object(geom: ScanGeometry, split: str) -> np.ndarray:
    """One split's ground-truth object: the synthetic one (its own seed), or the user's
    ``objectGuess_<split>`` of ``object.path``."""
    if geom.object_path:
        path = geom.object_path
        obj = io.load_npz(path, required=(object_key(split),))[object_key(split)].astype(np.complex64)
        if not np.all(np.isfinite(obj)) or np.abs(obj).max() > 1.0 + 1e-6:
            raise io.DataError(f"{path}: key '{object_key(split)}' must be finite with amplitude in (0, 1]")
        return obj
    return make_object(geom.object_size, split_seed(geom.simulation_seed, split, 0), geom.object_scale)


def write_phase_c(geom: ScanGeometry, dose: int, paths: dict, batch: int = BATCH) -> dict:
    """Simulate ``dose`` and write ``paths[split]`` for every split in ``paths``.

    Returns, per split, what the overview figure needs (object, positions, lattice, probe and a
    few patterns), not the diffraction. Objects, probe shape and positions depend only on
    ``seeds.simulation`` (and the split); the Poisson draw on (seed, split, dose).
    """
    probe = load_probe(geom.probe, geom.N)
    objects = {s: load_object(geom, s) for s in SPLITS}
    scans = {s: geom.scan_positions(s) for s in SPLITS}
    totals = np.concatenate([illumination_totals(objects[s], probe, scans[s][0]) for s in SPLITS])
    scaled = dose_scaled_probe(probe, totals, float(dose))
    out = {}
    for split in paths:
        positions, lattice = scans[split]
        n = len(positions)
        rng = np.random.default_rng(split_seed(geom.simulation_seed, split, 2, dose))
        examples, total_counts = [], 0.0
        with io.npz_writer(paths[split]) as w:
            with w.stream("diffraction", (n, geom.N, geom.N), np.float32) as put:
                for block in amplitude_batches(objects[split], scaled, positions, rng, batch):
                    io.check_amplitudes(paths[split], "diffraction", block)
                    total_counts += float(np.sum(block.astype(np.float64) ** 2))
                    put(block)
                    if not examples:
                        examples = [block[np.flatnonzero(lattice[: len(block)] == v)[0]]
                                    for v in range(len(geom.views)) if np.any(lattice[: len(block)] == v)]
            small = dict(
                xcoords=positions[:, 0],
                ycoords=positions[:, 1],
                probeGuess=scaled,
                objectGuess=objects[split],
                scan_index=np.arange(n, dtype=np.int64),
                lattice=lattice,
                view_names=np.array(geom.view_names),
                dose=np.int64(dose),
                N=np.int64(geom.N),
                seed_simulation=np.int64(geom.simulation_seed),
                probe_diameter=np.float64(geom.probe_diameter),
                split=np.array(split),
            )
            for key, value in small.items():
                w.add(key, value)
        log.info("dose %d, %s: %d patterns, mean total counts %.1f", dose, split, n, total_counts / max(n, 1))
        out[split] = dict(small, examples=np.asarray(examples))
    return out


def validate_phase_c(path, dose_tolerance: float = 0.15, block: int = BATCH) -> dict:
    """Check a canonical Phase C file; raise DataError naming the file and key on any violation.

    Beyond keys, dtypes and lengths, the diffraction must be amplitudes: finite, ≥ 0, and the
    mean total Σ amplitude² per pattern must match the stored dose (intensities stored by
    mistake give Σ counts², far above it). The diffraction is read in row blocks, so memory is
    one block. Returns the small arrays (everything but the diffraction).
    """
    small_keys = tuple(k for k in PHASE_C_KEYS if k != "diffraction")
    d = io.load_npz(path, required=PHASE_C_KEYS, only=small_keys + ("lattice", "view_names", "probe_diameter"))
    n = int(d["N"])
    _, shape, dtype = io.npz_member_layout(path, "diffraction")
    io.check_array(path, "diffraction", np.empty((0,) + shape[1:], dtype), dtype=np.float32, ndim=3)
    io.check_array(path, "diffraction", np.empty((0,) + shape[1:], dtype), shape=(None, n, n))
    npos = shape[0]
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
    total = 0.0
    for s in range(0, npos, block):
        rows = io.read_npz_rows(path, "diffraction", np.arange(s, min(s + block, npos)))
        io.check_amplitudes(path, "diffraction", rows)
        total += float(np.sum(rows.astype(np.float64) ** 2))
    if npos:
        # per-pattern totals spread with the object's local transmission: allow the sample spread
        tol = dose_tolerance + 3.0 / np.sqrt(npos)
        mean_total = total / npos
        if not 1.0 - tol <= mean_total / dose <= 1.0 + tol:
            raise io.DataError(
                f"{path}: key 'diffraction': mean Σ amplitude² per pattern is {mean_total:.4g} but key 'dose' is "
                f"{dose:.4g}; expected amplitudes sqrt(counts) (intensities stored?)"
            )
    return d


#: Gaussian blur (pixels) removed before comparing fine structure (:func:`shared_content`)
FINE_SIGMA = 4.0


def fine_structure(image: np.ndarray, sigma: float = FINE_SIGMA) -> np.ndarray:
    """The image minus its Gaussian blur: the edges and detail a reconstruction must resolve."""
    image = np.asarray(image, dtype=np.float64)
    return image - ndimage.gaussian_filter(image, sigma)


def shared_content(template: np.ndarray, image: np.ndarray) -> float:
    """Largest normalised cross-correlation of ``template`` with any of the 8 symmetries of the
    square of ``image`` (transpose, flips), at every shift where it fits (FFT-based:
    :func:`skimage.feature.match_template`). 1 when the template is a copy of a transformed
    region of the image; the chance level of independent content is far below (docs/design.md).
    """
    from skimage.feature import match_template

    from .models.augment import DIHEDRAL, transform_images

    return max(float(match_template(transform_images(image, g), template).max()) for g in DIHEDRAL)
