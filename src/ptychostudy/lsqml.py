"""Phase F: the iterative arm, the LSQML engine of the ``ptychi`` library (pty-chi 2.2).

LSQML runs on all scan positions of a view's split, from a flat object (ones, never the
ground truth) and the known dose-scaled probe, with positions fixed. The result is returned
in the ground-truth object's pixel frame so that Phase G treats every arm alike.

Conventions (the adapter of :mod:`ptychostudy.conventions`; ``tests/test_ptychi.py`` checks it
against ``conventions.expected_counts``):

* **Diffraction.** We store amplitudes sqrt(counts) with DC at the centre; ptychi takes
  intensities and, with ``data_options.fft_shift=True``, DC-centred patterns.
* **FFT scaling.** Our expected counts are ``|FFT2(P·O)|²/N²``; ptychi predicts
  ``|fft2(P·O)|²`` (unnormalised FFT). The probe handed to ptychi is therefore ``P/N``, and
  ptychi's probe is multiplied by N on the way back.
* **Positions.** ptychi takes (y, x) pixel positions relative to ``pos_origin_coords``; the
  pixel index of a patch centre is ``position + origin`` and, for even N, a patch whose centre
  index is ``k − 0.5`` starts at buffer pixel ``k − N/2``. Our patch centred at x starts at
  object pixel ``x − N/2``. With the object buffer's top-left corner at our integer pixel
  ``(x0, y0)`` and origin ``(H//2 − 0.5, W//2 − 0.5)`` (ptychi's own "support" default for
  even sizes, set explicitly here):

      ptychi_x = x − x0 − W//2,     ptychi_y = y − y0 − H//2

  so buffer pixel ``[i, j]`` is our object pixel ``[y0 + i, x0 + j]``: an integer offset.
* **Sub-pixel positions.** ptychi 2.2 applies the fractional part of a position to the probe
  (``apply_subpixel_shifts_on_probe``, hard-wired in LSQML) and cuts the object patch at the
  rounded position, whereas our simulation shifts the object under a fixed probe. The two
  agree to the extent that the probe vanishes at the edges of its N×N window; with a probe
  that fills its window they differ at the per-cent level for fractional positions (see
  ``subpixel_model_mismatch``).
* **Scale.** With a fixed probe the object–probe ambiguity removal (which rescales the probe)
  and the first-epoch probe intensity rescaling are switched off: the known probe is exact
  and the object keeps the absolute transmission scale. With ``refine_probe`` both stay on.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import io
from .patches import place_patches

logger = logging.getLogger(__name__)

#: extra buffer pixels around the union of all patch footprints
BUFFER_MARGIN = 2


@dataclass(frozen=True)
class PtychiFrame:
    """The ptychi object buffer and its place in our object frame (integer offset)."""

    x0: int  # our object column of buffer column 0
    y0: int  # our object row of buffer row 0
    height: int
    width: int

    @property
    def origin(self) -> tuple[float, float]:
        """ptychi ``position_origin_coords`` (y, x): buffer index of the position (0, 0)."""
        return (self.height // 2 - 0.5, self.width // 2 - 0.5)

    def to_ptychi(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Our (x, y) object-pixel positions -> ptychi (x, y) arrays relative to the origin."""
        px = positions[:, 0] - self.x0 - self.width // 2
        py = positions[:, 1] - self.y0 - self.height // 2
        return px.astype(np.float64), py.astype(np.float64)

    def to_object_frame(self, buffer: np.ndarray, object_shape: tuple[int, int], fill=0) -> np.ndarray:
        """Place the (H, W) buffer into an array of ``object_shape`` (our frame), cropping overhang."""
        out = np.full(object_shape, fill, dtype=buffer.dtype)
        ly, lx = object_shape
        oy0, ox0 = max(self.y0, 0), max(self.x0, 0)
        oy1, ox1 = min(self.y0 + self.height, ly), min(self.x0 + self.width, lx)
        if oy1 > oy0 and ox1 > ox0:
            out[oy0:oy1, ox0:ox1] = buffer[oy0 - self.y0 : oy1 - self.y0, ox0 - self.x0 : ox1 - self.x0]
        return out

    def from_object_frame(self, obj: np.ndarray, fill=1.0) -> np.ndarray:
        """Cut the buffer out of an object in our frame (``fill`` where the buffer overhangs)."""
        dummy = PtychiFrame(-self.x0, -self.y0, *obj.shape)
        return dummy.to_object_frame(obj, (self.height, self.width), fill=fill)


def object_frame(positions: np.ndarray, n: int, margin: int = BUFFER_MARGIN) -> PtychiFrame:
    """The smallest buffer (plus ``margin``) that holds every patch ptychi cuts at ``positions``.

    ptychi cuts the object at the rounded position (the fractional part goes to the probe), so
    the footprint of a patch is ``[round(x) − N/2, round(x) + N/2)``; one extra pixel covers
    rounding ties.
    """
    positions = np.asarray(positions, dtype=np.float64)
    lo = np.floor(positions.min(axis=0)) - n // 2 - margin
    hi = np.ceil(positions.max(axis=0)) + (n - n // 2) + margin
    x0, y0 = int(lo[0]), int(lo[1])
    return PtychiFrame(x0=x0, y0=y0, height=int(hi[1]) - y0, width=int(hi[0]) - x0)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch sees no CUDA device")
    return device


def build_task(
    intensities: np.ndarray,
    positions: np.ndarray,
    probe: np.ndarray,
    frame: PtychiFrame,
    *,
    initial_object: np.ndarray | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    refine_probe: bool = False,
    device: str = "cpu",
    noise_model: str = "gaussian",
):
    """A ``ptychi`` LSQML task in our conventions (see the module docstring).

    ``intensities (n, N, N)`` are counts with DC at the centre; ``probe`` is in our convention
    (``|FFT2(P·O)|²/N²``); ``initial_object`` is the (H, W) buffer (ones when None).
    Sets torch's global default device and dtype (ptychi does so itself).
    """
    import ptychi.api as api
    from ptychi.api.task import PtychographyTask

    n = probe.shape[-1]
    opts = api.LSQMLOptions()
    opts.data_options.fft_shift = True  # our patterns have DC at the centre

    obj_opts = opts.object_options
    obj_opts.optimizable = True
    obj_opts.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    obj_opts.position_origin_coords = np.asarray(frame.origin, dtype=np.float64)
    # with a fixed, known probe the ambiguity removal would rescale the probe: keep the scale
    obj_opts.remove_object_probe_ambiguity.enabled = bool(refine_probe)

    opts.probe_options.optimizable = bool(refine_probe)
    opts.probe_position_options.optimizable = False

    rec = opts.reconstructor_options
    rec.num_epochs = int(epochs)
    rec.batch_size = int(min(batch_size, len(positions)))
    rec.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    rec.default_dtype = api.Dtypes.FLOAT32
    rec.random_seed = int(seed)
    rec.allow_nondeterministic_algorithms = False
    rec.rescale_probe_intensity_in_first_epoch = bool(refine_probe)
    rec.noise_model = {"gaussian": api.NoiseModels.GAUSSIAN, "poisson": api.NoiseModels.POISSON}[noise_model]

    if initial_object is None:
        initial_object = np.ones((frame.height, frame.width), dtype=np.complex64)
    px, py = frame.to_ptychi(positions)
    return PtychographyTask(
        opts,
        diffraction_data=np.ascontiguousarray(intensities, dtype=np.float32),
        object_data=np.ascontiguousarray(initial_object, dtype=np.complex64)[None],
        probe_data=(probe.astype(np.complex64) / n)[None, None],
        probe_position_x_px=px,
        probe_position_y_px=py,
    )


@contextlib.contextmanager
def _restore_torch_defaults():
    """Undo ptychi's changes to torch's global default device and dtype when the block ends; yields torch."""
    import torch

    dtype, dev = torch.get_default_dtype(), torch.get_default_device()
    try:
        yield torch
    finally:
        torch.set_default_dtype(dtype)
        torch.set_default_device(dev)


def predict_counts(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """ptychi's forward model in our convention: expected counts (n, N, N) float64, DC at the centre.

    ``obj`` is in our frame; positions (n, 2) are (x, y). Runs on the CPU. Used to verify the
    position and FFT conventions against ``conventions.expected_counts``.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    n = probe.shape[-1]
    frame = object_frame(positions, n)
    dummy = np.ones((len(positions), n, n), dtype=np.float32)
    with _restore_torch_defaults() as torch, warnings.catch_warnings():
        # ptychi converts a requires-grad tensor to a scalar while building; harmless here
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
        task = build_task(dummy, positions, probe, frame, initial_object=frame.from_object_frame(obj))
        with torch.no_grad():
            y = task.reconstructor.forward_model.forward(torch.arange(len(positions))).cpu().numpy()
    return np.fft.fftshift(y.astype(np.float64), axes=(-2, -1))


def subpixel_model_mismatch(probe: np.ndarray, obj: np.ndarray, positions: np.ndarray) -> float:
    """Relative L2 difference between ptychi's and our expected counts at ``positions``.

    Zero at integer positions; at fractional ones it measures how much of the probe reaches
    its window's edge (ptychi shifts the probe, our simulation the object).
    """
    from .patches import extract_patches
    from .conventions import expected_counts

    ours = expected_counts(probe, extract_patches(obj, positions, probe.shape[-1]))
    theirs = predict_counts(obj, probe, positions)
    return float(np.linalg.norm(theirs - ours) / np.linalg.norm(ours))


#: positions placed at once by :func:`illumination_map`
ILLUMINATION_BLOCK = 256


def illumination_map(probe: np.ndarray, positions: np.ndarray, object_shape: tuple[int, int]) -> np.ndarray:
    """Σ |P|² placed at the positions in our object frame, normalised to a maximum of 1 (float32).

    Tells Phase G where the reconstruction is constrained by data; the region outside ptychi's
    buffer is zero there (and in the returned object).
    """
    n = probe.shape[-1]
    pad = n + 16
    ly, lx = object_shape
    canvas = np.zeros((ly + 2 * pad, lx + 2 * pad), dtype=np.complex128)
    weight = np.zeros(canvas.shape, dtype=np.float64)
    inten = np.abs(probe.astype(np.complex128)) ** 2
    # weight canvas accumulates the window = |P|²; the data canvas is a by-product. In blocks:
    # the sub-pixel contributions of a whole split would take ~0.5 MB per position at N = 128
    ones = np.ones((ILLUMINATION_BLOCK, n, n))
    for start in range(0, len(positions), ILLUMINATION_BLOCK):
        block = positions[start:start + ILLUMINATION_BLOCK]
        place_patches(canvas, weight, ones[: len(block)], block + pad, inten)
    illum = np.clip(weight[pad : pad + ly, pad : pad + lx], 0, None)
    return (illum / illum.max() if illum.max() > 0 else illum).astype(np.float32)


def reconstruct(
    diffraction_amp: np.ndarray,
    positions: np.ndarray,
    probe: np.ndarray,
    object_shape: tuple[int, int],
    epochs: int,
    batch_size: int,
    seed: int,
    refine_probe: bool = False,
    threads: int = 1,
    device: str = "auto",
    noise_model: str = "gaussian",
) -> dict:
    """LSQML on all positions from a flat object and the known probe; the object in our frame.

    ``diffraction_amp (n, N, N)`` amplitudes sqrt(counts), DC at the centre; ``positions (n, 2)``
    (x, y) object pixels; ``probe (N, N)`` dose-scaled in our convention. Returns ``object``
    (L, L) complex64 (zeros outside ptychi's buffer), ``probe`` (N, N) complex64 in our
    convention, ``loss`` (epochs,) float64 (ptychi's displayed loss per epoch),
    ``wall_time_s`` (task set-up + LSQML), ``illumination`` (L, L) float32 and ``device``.
    """
    diffraction_amp = np.asarray(diffraction_amp)
    positions = np.asarray(positions, dtype=np.float64)
    n = probe.shape[-1]
    if diffraction_amp.ndim != 3 or diffraction_amp.shape[1:] != (n, n):
        raise ValueError(f"diffraction must be (n, {n}, {n}) to match the probe, got {diffraction_amp.shape}")
    if positions.shape != (len(diffraction_amp), 2):
        raise ValueError(f"positions must be ({len(diffraction_amp)}, 2) (x, y), got {positions.shape}")
    if len(positions) == 0:
        raise ValueError("no scan positions to reconstruct")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be ≥ 1, got {epochs}, {batch_size}")

    import ptychi.api  # noqa: F401  (import outside the timed region: it takes seconds)
    import torch

    torch.set_num_threads(max(int(threads), 1))
    dev = _resolve_device(device)
    frame = object_frame(positions, n)
    ly, lx = object_shape
    if frame.x0 < 0 or frame.y0 < 0 or frame.x0 + frame.width > lx or frame.y0 + frame.height > ly:
        logger.warning("ptychi buffer %s reaches outside the %dx%d object frame; the overhang is cropped", frame, ly, lx)
    logger.info(
        "LSQML: %d positions, N=%d, buffer %dx%d at (x0=%d, y0=%d), epochs=%d, batch=%d, refine_probe=%s, device=%s",
        len(positions), n, frame.height, frame.width, frame.x0, frame.y0, epochs, batch_size, refine_probe, dev,
    )
    intensities = np.square(diffraction_amp, dtype=np.float32)
    with _restore_torch_defaults():
        t0 = time.perf_counter()
        task = build_task(
            intensities, positions, probe, frame,
            epochs=epochs, batch_size=batch_size, seed=seed, refine_probe=refine_probe, device=dev,
            noise_model=noise_model,
        )
        t_setup = time.perf_counter() - t0
        task.run()
        if dev == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        obj_buf = task.get_data_to_cpu("object", as_numpy=True)[0]
        probe_out = task.get_data_to_cpu("probe", as_numpy=True)[0, 0] * n
        loss = np.asarray(task.reconstructor.loss_tracker.table["loss"], dtype=np.float64)
        del task
    logger.info(
        "LSQML done in %.2f s (set-up %.2f s); loss first %.4g last %.4g", wall, t_setup, loss[0], loss[-1]
    )
    return {
        "object": frame.to_object_frame(obj_buf.astype(np.complex64), tuple(object_shape)),
        "probe": probe_out.astype(np.complex64),
        "loss": loss,
        "wall_time_s": float(wall),
        "illumination": illumination_map(probe, positions, tuple(object_shape)),
        "device": dev,
    }


def load_split_inputs(phase_c_path, groups_path) -> dict:
    """Read a Phase C split and a view's ``groups.npz``; return the view's diffraction, positions, probe, object shape.

    Validates with ``ptychostudy.io`` (errors name the file and the key).
    """
    keys = ("xcoords", "ycoords", "probeGuess", "objectGuess")
    c = io.load_npz(phase_c_path, required=keys + ("diffraction",), only=keys)
    g = io.load_npz(groups_path, required=("view_index",), only=("view_index",))
    _, shape, dtype = io.npz_member_layout(phase_c_path, "diffraction")
    empty = np.empty((0,) + shape[1:], dtype)
    io.check_array(phase_c_path, "diffraction", empty, dtype=np.float32, ndim=3)
    n_all, n = shape[0], shape[1]
    io.check_array(phase_c_path, "diffraction", empty, shape=(None, n, n))
    io.check_array(phase_c_path, "probeGuess", c["probeGuess"], ndim=2, shape=(n, n))
    if not np.iscomplexobj(c["probeGuess"]):
        raise io.DataError(f"{phase_c_path}: key 'probeGuess' has dtype {c['probeGuess'].dtype}, expected complex64")
    for key in ("xcoords", "ycoords"):
        io.check_array(phase_c_path, key, c[key], ndim=1, shape=(n_all,))
    io.check_array(phase_c_path, "objectGuess", c["objectGuess"], ndim=2)
    vi = g["view_index"]
    io.check_array(groups_path, "view_index", vi, ndim=1)
    if not np.issubdtype(vi.dtype, np.integer):
        raise io.DataError(f"{groups_path}: key 'view_index' has dtype {vi.dtype}, expected integer indices")
    if vi.size == 0:
        raise io.DataError(f"{groups_path}: key 'view_index' is empty; expected the view's position indices")
    if vi.min() < 0 or vi.max() >= n_all:
        raise io.DataError(
            f"{groups_path}: key 'view_index' has indices in [{vi.min()}, {vi.max()}], "
            f"expected indices into the {n_all} positions of {phase_c_path}"
        )
    if len(np.unique(vi)) != len(vi):
        raise io.DataError(f"{groups_path}: key 'view_index' repeats positions; expected unique indices")
    amp = io.read_npz_rows(phase_c_path, "diffraction", vi)  # the view's rows only, not the split
    io.check_amplitudes(phase_c_path, "diffraction", amp)
    positions = np.stack([c["xcoords"][vi], c["ycoords"][vi]], axis=1).astype(np.float64)
    if not np.all(np.isfinite(positions)):
        raise io.DataError(f"{phase_c_path}: keys 'xcoords'/'ycoords' contain NaN or infinite values")
    return {
        "diffraction": amp,
        "positions": positions,
        "probe": c["probeGuess"].astype(np.complex64),
        "object_shape": tuple(int(s) for s in c["objectGuess"].shape),
        "view_index": vi.astype(np.int64),
    }


def reconstruct_split(
    phase_c_path,
    groups_path,
    out_path=None,
    *,
    epochs: int,
    batch_size: int,
    refine_probe: bool = False,
    noise_model: str = "gaussian",
    seed: int = 0,
    threads: int = 1,
    device: str = "auto",
) -> dict:
    """Reconstruct one dose × view × split with LSQML from its files; write ``ptychi.npz`` if ``out_path``.

    Uses exactly the view's positions (``view_index`` of ``groups.npz``), all of them. The
    output holds ``object``, ``probe``, ``loss``, ``wall_time_s``, ``n_positions``, ``epochs``,
    plus ``illumination``, ``view_index``, ``batch_size``, ``refine_probe`` and ``seed``.
    """
    inp = load_split_inputs(phase_c_path, groups_path)
    logger.info("%s + %s: %d positions of the view", phase_c_path, groups_path, len(inp["positions"]))
    res = reconstruct(
        inp["diffraction"], inp["positions"], inp["probe"], inp["object_shape"],
        epochs=epochs, batch_size=batch_size, seed=seed, refine_probe=refine_probe,
        threads=threads, device=device, noise_model=noise_model,
    )
    res["n_positions"] = len(inp["positions"])
    res["epochs"] = int(epochs)
    if out_path is not None:
        write_reconstruction(out_path, res, view_index=inp["view_index"], batch_size=batch_size,
                             refine_probe=refine_probe, noise_model=noise_model, seed=seed)
    return res


def write_reconstruction(path, result: dict, **extra) -> None:
    """Atomically write a reconstruction in the Phase F contract (``ptychostudy.io.save_npz``)."""
    path = Path(path)
    io.save_npz(
        path,
        object=result["object"].astype(np.complex64),
        probe=result["probe"].astype(np.complex64),
        loss=np.asarray(result["loss"], dtype=np.float64),
        wall_time_s=np.float64(result["wall_time_s"]),
        n_positions=np.int64(result["n_positions"]),
        epochs=np.int64(result["epochs"]),
        illumination=result["illumination"].astype(np.float32),
        **{k: np.asarray(v) for k, v in extra.items()},
    )
    logger.info("wrote %s", path)


__all__ = [
    "PtychiFrame",
    "object_frame",
    "build_task",
    "predict_counts",
    "subpixel_model_mismatch",
    "illumination_map",
    "reconstruct",
    "load_split_inputs",
    "reconstruct_split",
    "write_reconstruction",
]
