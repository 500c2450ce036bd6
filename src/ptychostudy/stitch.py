"""Exact merge of predicted object patches (one inference chunk at a time) into the split's object.

Every patch is placed at its absolute scan position with a sub-pixel Fourier shift
(:func:`ptychostudy.patches.place_patches`) and weighted by a window ``w``; the stitched object
is ``Σ w·patch / Σ w``. The canvases are complex128/float64 and the merge streams the chunk
files one at a time, ``GROUP_BLOCK`` groups at a time, so memory is the canvas plus one block
of groups, and the result does not depend on how the groups were cut into chunks (differences
are rounding, ~1e-15, far below 1e-5).

**Per-group phase reconciliation** (``phase_rounds > 0``). The PINN's Poisson likelihood cannot
see a phase factor common to a group's patches, so each group comes back with its own arbitrary
constant phase; averaging neighbours with different offsets erases the object's low-frequency
phase. Each round streams the chunks once more: every group's phase
``φ_g = arg Σ_members Σ_pixels w · conj(patch) · O`` is estimated against the previous stitch
``O`` (the window weights the pixels the arm constrains best), and the group's patches, rotated
by ``exp(iφ_g)``, go onto a fresh canvas. Nothing but the arm's own patches is used (no ground
truth). ``φ_g`` of a group depends only on ``O`` and that group, so the result is still
chunk-invariant; memory is the canvas, the previous object, one block and one scalar per group.
The global phase stays arbitrary (Phase G removes it, as for every arm).

Window choice (``make_window``):

- ``"central"`` (``make_window``'s default): a separable Tukey window that is 1 on the central
  ``central_fraction`` of the patch and falls to 0 at the patch edge with a raised-cosine
  taper. Networks are least reliable at patch borders (zero-padding of convolutions, the
  probe's weak tails), so the centre dominates; the smooth taper avoids seams that a hard crop
  would leave between neighbouring patches.
- ``"probe"`` (the workflow's default, ``stitch.window``): ``|P|² / max|P|²``, the weight a
  least-squares ptychographic solver gives each object pixel (it is constrained in proportion
  to the illumination). On the default run's trained networks it beats the central windows on
  both splits (bench/stitch.md: Baseline test phase SSIM 0.44 against 0.21 at dose 1e5).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .io import DataError, check_array, load_npz, npz_member_layout, read_npz_rows, save_npz
from .patches import place_patches, scatter_add, shifted_contributions

log = logging.getLogger(__name__)

#: stitched pixels whose weight is below this fraction of the largest weight are set to 0
MIN_RELATIVE_WEIGHT = 1e-3
#: patches placed per call of ``place_patches`` (bounds the padded complex128 work arrays)
PLACE_BATCH = 64
WINDOW_KINDS = ("central", "probe")


def _tukey_1d(n: int, central_fraction: float) -> np.ndarray:
    """1 within ``central_fraction·n/2`` of the patch centre (pixel n/2), cosine taper to 0 at n/2."""
    d = np.abs(np.arange(n) - n / 2.0)  # distance from the patch centre (docs/design.md, "Physics and data conventions": pixel N/2)
    half = n / 2.0
    flat = central_fraction * half
    w = np.ones(n)
    if flat < half:
        t = np.clip((d - flat) / (half - flat), 0.0, 1.0)
        w = 0.5 * (1.0 + np.cos(np.pi * t))
    return w


def make_window(
    n: int,
    kind: str = "central",
    central_fraction: float = 0.5,
    probe: np.ndarray | None = None,
) -> np.ndarray:
    """Stitching weight ``(n, n)`` float64 with maximum 1 (see the module docstring for the kinds).

    ``central_fraction`` in [0, 1]: 1 gives a flat window (plain averaging of whole patches), 0 a
    full Hann window. ``probe`` (n, n) is required for ``kind="probe"``.
    """
    if kind == "central":
        if not 0.0 <= float(central_fraction) <= 1.0:
            raise ValueError(f"stitch window: central_fraction must be in [0, 1], got {central_fraction!r}")
        w1 = _tukey_1d(int(n), float(central_fraction))
        return np.outer(w1, w1)
    if kind == "probe":
        if probe is None:
            raise ValueError("stitch window kind 'probe' needs the probe (probeGuess)")
        probe = np.asarray(probe)
        if probe.shape != (n, n):
            raise ValueError(f"stitch window: probe has shape {probe.shape}, expected ({n}, {n})")
        inten = np.abs(probe.astype(np.complex128)) ** 2
        if inten.max() <= 0:
            raise ValueError("stitch window: the probe is zero everywhere")
        return inten / inten.max()
    raise ValueError(f"stitch window: unknown kind {kind!r}; expected one of {list(WINDOW_KINDS)}")


def _flatten(patches: np.ndarray, positions: np.ndarray, src: str = "arrays") -> tuple[np.ndarray, np.ndarray]:
    """(B, N, N, C) patches and (B, C, 2) positions -> (B·C, N, N) and (B·C, 2); (M, N, N) passes."""
    patches = np.asarray(patches)
    positions = np.asarray(positions, dtype=np.float64)
    if patches.ndim == 4:
        b, n, n2, c = patches.shape
        check_array(src, "positions", positions, ndim=3, shape=(b, c, 2))
        return np.moveaxis(patches, -1, 1).reshape(b * c, n, n2), positions.reshape(b * c, 2)
    if patches.ndim == 3:
        check_array(src, "positions", positions, ndim=2, shape=(patches.shape[0], 2))
        return patches, positions
    raise DataError(f"{src}: key 'patches' has shape {patches.shape}, expected (B, N, N, C) or (B, N, N)")


def _accumulate(canvas, weight, patches, positions, window, batch: int = PLACE_BATCH) -> None:
    for s in range(0, len(patches), batch):
        place_patches(canvas, weight, patches[s : s + batch], positions[s : s + batch], window)


def _accumulate_rotated(canvas, patches, positions, window, reference: np.ndarray, c: int,
                        batch: int = PLACE_BATCH) -> np.ndarray:
    """Add each group's patches (flattened, group-major), rotated by the group's phase against
    ``reference`` (the previous stitch), to ``canvas``; returns the phases (G,) in radians.

    ``φ_g = arg Σ_members Σ_pixels conj(S(window · patch)) · O`` with ``S`` the shift onto the
    canvas grid: the inner product of the patch with the stitch, weighted by the window. The
    weights do not change with a rotation, so the weight canvas of the first pass stands, and
    only the patch channel is shifted (half the Fourier work of a plain pass).
    """
    if batch % c:
        raise ValueError(f"batch {batch} must hold whole groups of {c}")
    ref = reference.ravel()
    phases = np.empty(len(patches) // c)
    for s in range(0, len(patches), batch):
        flat, values, _ = shifted_contributions(patches[s : s + batch], positions[s : s + batch], window,
                                                canvas.shape, with_weight=False)
        overlap = np.sum(np.conj(values) * ref[flat], axis=1).reshape(-1, c).sum(axis=1)
        phi = np.angle(overlap)
        phases[s // c : s // c + len(phi)] = phi
        scatter_add(canvas, flat, values * np.repeat(np.exp(1j * phi), c)[:, None])
    return phases


def _wrapped_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.angle(np.exp(1j * (a - b))) ** 2))) if len(a) else 0.0


def _finish(canvas: np.ndarray, weight: np.ndarray, min_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """object = canvas / weight where weight > min_weight · max(weight), else 0."""
    wmax = float(weight.max()) if weight.size else 0.0
    covered = weight > min_weight * wmax if wmax > 0 else np.zeros(weight.shape, dtype=bool)
    obj = np.zeros(canvas.shape, dtype=np.complex128)
    obj[covered] = canvas[covered] / weight[covered]
    return obj.astype(np.complex64), np.where(covered, weight, 0.0).astype(np.float32)


def _new_canvases(object_shape) -> tuple[np.ndarray, np.ndarray]:
    shape = tuple(int(s) for s in object_shape)
    return np.zeros(shape, dtype=np.complex128), np.zeros(shape, dtype=np.float64)


def merge_arrays(
    patches: np.ndarray,
    positions: np.ndarray,
    object_shape,
    window: np.ndarray,
    min_weight: float = MIN_RELATIVE_WEIGHT,
    phase_rounds: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stitch in-memory patches ``(B, N, N, C)`` at ``positions (B, C, 2)`` (x, y): the unchunked pass.

    ``phase_rounds`` rounds of per-group phase reconciliation (module docstring) follow the
    first stitch. Returns the object (complex64, 0 where uncovered) and the weight (float32,
    0 where uncovered).
    """
    c = np.shape(patches)[-1] if np.ndim(patches) == 4 else 1
    flat_p, flat_x = _flatten(patches, positions)
    canvas, weight = _new_canvases(object_shape)
    _accumulate(canvas, weight, flat_p, flat_x, window)
    obj, w = _finish(canvas, weight, min_weight)
    for _ in range(int(phase_rounds)):
        canvas = np.zeros_like(canvas)
        _accumulate_rotated(canvas, flat_p, flat_x, window, obj, c)
        obj, w = _finish(canvas, weight, min_weight)
    return obj, w


#: groups read from an inference file at a time: the merge never holds a whole chunk
GROUP_BLOCK = 256


def inference_chunk_layout(path, n: int | None = None) -> tuple[int, int, float]:
    """Check an inference file's contract (docs/contracts.md, Inference) without loading its
    patches: returns (groups, C, wall_time_s)."""
    _, pshape, pdtype = npz_member_layout(path, "patches")
    _, xshape, _ = npz_member_layout(path, "positions")
    empty = np.empty((0,) + pshape[1:], pdtype)
    check_array(path, "patches", empty, ndim=4, shape=(None, n, n, None))
    if not np.iscomplexobj(empty):
        raise DataError(f"{path}: key 'patches' has dtype {pdtype}, expected complex64 object patches")
    check_array(path, "positions", np.empty((0,) + xshape[1:]), ndim=3, shape=(None, pshape[3], 2))
    if xshape[0] != pshape[0]:
        raise DataError(f"{path}: key 'positions' has {xshape[0]} groups, expected {pshape[0]} as key 'patches'")
    wall = load_npz(path, required=("wall_time_s",), only=("wall_time_s",))["wall_time_s"]
    if np.ndim(wall) != 0:
        raise DataError(f"{path}: key 'wall_time_s' has shape {np.shape(wall)}, expected a scalar")
    return pshape[0], pshape[3], float(wall)


def read_inference_block(path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patches (b, N, N, C) and positions (b, C, 2) of groups ``rows`` of an inference file, checked finite."""
    p = read_npz_rows(path, "patches", rows)
    x = read_npz_rows(path, "positions", rows).astype(np.float64)
    if not np.all(np.isfinite(p)):
        raise DataError(f"{path}: key 'patches' contains NaN or infinite values")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: key 'positions' contains NaN or infinite values")
    return p, x


def _stitch_pass(paths, object_shape, window, min_weight, reference=None, weight=None):
    """One pass over the chunk files, ``GROUP_BLOCK`` groups at a time. Without ``reference``:
    the plain stitch, weights included. With it (the previous object) and the first pass's
    ``weight`` canvas: each group rotated by its phase against the reference. Returns (object,
    weight, weight canvas, Σ wall_time_s, group phases or None)."""
    n = window.shape[0]
    canvas, fresh = _new_canvases(object_shape)
    weight = fresh if weight is None else weight
    wall, phases = 0.0, []
    for path in paths:
        groups, c, chunk_wall = inference_chunk_layout(path, n)
        for s in range(0, groups, GROUP_BLOCK):
            patches, positions = read_inference_block(path, np.arange(s, min(s + GROUP_BLOCK, groups)))
            flat_p, flat_x = _flatten(patches, positions, str(path))
            try:
                if reference is None:
                    _accumulate(canvas, weight, flat_p, flat_x, window)
                else:
                    phases.append(_accumulate_rotated(canvas, flat_p, flat_x, window, reference, c))
            except ValueError as exc:
                raise DataError(f"{path}: key 'positions': {exc}") from exc
        wall += chunk_wall
    obj, w = _finish(canvas, weight, min_weight)
    return obj, w, weight, wall, (np.concatenate(phases) if reference is not None else None)


def merge_chunk_files(
    paths,
    object_shape,
    window: np.ndarray,
    min_weight: float = MIN_RELATIVE_WEIGHT,
    phase_rounds: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Stream inference chunk files onto one canvas: (object complex64, weight float32, Σ wall_time_s).

    With ``phase_rounds > 0`` every round streams the files once more and reconciles the
    groups' phases (module docstring). Holds only the canvases, the previous object and one
    block of ``GROUP_BLOCK`` groups in memory (plus one scalar per group).
    """
    paths = list(paths)
    if not paths:
        raise ValueError("merge_chunk_files: no chunk files given")
    obj, w, weight, wall, _ = _stitch_pass(paths, object_shape, window, min_weight)
    previous = None
    for r in range(int(phase_rounds)):
        obj, w, _, _, phases = _stitch_pass(paths, object_shape, window, min_weight, reference=obj, weight=weight)
        if previous is not None:
            log.info("phase round %d: RMS change of the group phases %.2e rad", r + 1, _wrapped_rms(phases, previous))
        previous = phases
    return obj, w, wall


def median_counts_ratio(paths) -> float:
    """Median over a split's patterns of predicted ÷ measured total counts (the inference files'
    ``counts_ratio``; NaN when they do not carry it). Reads that key alone, one file at a time."""
    parts = []
    for path in paths:
        with np.load(path, allow_pickle=False) as z:
            if "counts_ratio" not in z.files:
                return float("nan")
            parts.append(np.asarray(z["counts_ratio"], np.float64).ravel())
    return float(np.median(np.concatenate(parts))) if parts else float("nan")


def write_merged(pred_paths, phase_c_path, out_path, window: dict | None = None, phase_rounds: int = 0) -> dict:
    """Merge a split's inference chunks into ``merged.npz`` (object, weight, wall_time_s, and the
    median predicted ÷ measured total counts ``counts_ratio``).

    The object's shape (and the probe, for ``kind="probe"``) come from the Phase C split file.
    ``window``: ``window`` (or ``kind``): "central" | "probe", and ``central_fraction`` (the
    config's ``stitch`` section). ``phase_rounds``: rounds of per-group phase reconciliation
    (0: none). Returns a summary of the merge.
    """
    window = dict(window or {})
    # the config's `stitch` section names the kind `window`; `kind` is accepted as well
    kind = window.get("kind", window.get("window", "central"))
    c = load_npz(phase_c_path, required=("objectGuess", "probeGuess"), only=("objectGuess", "probeGuess"))
    shape = c["objectGuess"].shape
    probe = c["probeGuess"]
    win = make_window(probe.shape[-1], kind, window.get("central_fraction", 0.5), probe=probe)
    pred_paths = list(pred_paths)
    obj, weight, wall = merge_chunk_files(pred_paths, shape, win, phase_rounds=phase_rounds)
    ratio = median_counts_ratio(pred_paths)
    save_npz(out_path, object=obj, weight=weight, wall_time_s=np.float64(wall), counts_ratio=np.float64(ratio))
    info = {
        "n_chunks": len(pred_paths),
        "object_shape": shape,
        "covered_fraction": float(np.mean(weight > 0)),
        "wall_time_s": wall,
        "window": {"kind": kind, "central_fraction": window.get("central_fraction", 0.5)},
        "phase_rounds": int(phase_rounds),
        "counts_ratio_median": ratio,
    }
    log.info("merged %s chunk(s) into %s: %s", info["n_chunks"], Path(out_path), info)
    return info
