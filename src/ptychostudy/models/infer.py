"""Per-chunk inference: object patches of a chunk's groups from a trained PINN or Baseline.

What the PINN exports is what its loss constrains (``export="constrained"``, the default): the
decoder's amplitude·exp(i·phase) for the C members **after** the overlap constraint of the
physics layer (blend on the group's canvas, re-extract: ``PtychoForward.object_patches``), i.e.
exactly the patches whose far-field counts enter the Poisson likelihood. ``export="raw"`` gives
the decoder output before that constraint; it is kept for comparison (bench/stitch.md) and
does not explain the data: its predicted total counts were 1.36–1.82× the measured ones on the
default run. The Baseline predicts each member pattern on its own (C = 1: both are the same).

Batches are padded to a fixed size, so the graph is traced once and, as no layer couples
groups, a group's prediction does not depend on the rest of its batch.

Every inference file also records ``counts_ratio (B, C)``: the total counts the exported patch
predicts with the chunk's probe, ``Σ|P·O|²`` (= ``Σ|FFT2(P·O)|²/N²`` by Parseval), divided by
the measured total ``Σ diffraction²``. For an arm whose patches explain the data it is ≈ 1.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import numpy as np

from ..io import DataError, save_npz
from . import physics  # noqa: F401  (registers the custom layers that keras.models.load_model needs)
from ..shards import INFERENCE_KEYS, load_chunk

log = logging.getLogger("ptychostudy.models")


def model_kind(model) -> str:
    if model.name not in ("pinn", "baseline"):
        raise ValueError(f"model '{model.name}' is neither 'pinn' nor 'baseline'")
    return model.name


def model_shape(model) -> tuple[int, int]:
    """(N, C) the model expects; C is 1 for the Baseline (one pattern at a time)."""
    shape = model.get_layer("diffraction").output.shape
    return int(shape[1]), int(shape[3])


EXPORTS = ("constrained", "raw")


class Predictor:
    """Object patches from diffraction amplitudes, compiled once for a fixed batch size.

    ``export`` (PINN only): ``"constrained"`` (default) returns the patches after the overlap
    constraint, which need the groups' ``coords_relative``; ``"raw"`` the decoder output.
    """

    def __init__(self, model, batch_size: int = 64, export: str = "constrained"):
        import keras
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if export not in EXPORTS:
            raise ValueError(f"export must be one of {list(EXPORTS)}, got {export!r}")
        self.kind = model_kind(model)
        self.N, self.C = model_shape(model)
        self.batch_size = int(batch_size)
        # the Baseline has no overlap constraint: its raw output is what it exports
        self.constrained = export == "constrained" and self.kind == "pinn" and self.C > 1
        net = keras.Model(
            model.get_layer("diffraction").output,
            [model.get_layer("amplitude").output, model.get_layer("phase").output],
        )
        if self.constrained:
            forward = model.get_layer("counts")

            def patches(x, rel):  # (B, N, N, C), (B, C, 2) -> (B, N, N, C) complex64
                amp, phase = net(x, training=False)
                return tf.transpose(forward.object_patches(amp, phase, rel), [0, 2, 3, 1])
        else:

            def patches(x, rel):
                amp, phase = net(x, training=False)
                return tf.complex(amp * tf.cos(phase), amp * tf.sin(phase))

        self._fn = tf.function(patches)

    def _run(self, x: np.ndarray, rel: np.ndarray) -> np.ndarray:
        """(n, N, N, c) float32, (n, c, 2) → (n, N, N, c) complex64, in padded batches of ``batch_size``."""
        n, bs = len(x), self.batch_size
        out = np.empty(x.shape, dtype=np.complex64)

        def padded(a, k):
            return a if k == bs else np.concatenate([a, np.zeros((bs - k,) + a.shape[1:], a.dtype)])

        for s in range(0, n, bs):
            k = len(x[s : s + bs])
            out[s : s + k] = self._fn(padded(x[s : s + bs], k), padded(rel[s : s + bs], k)).numpy()[:k]
        return out

    def __call__(self, diffraction: np.ndarray, coords_relative: np.ndarray | None = None) -> np.ndarray:
        """Patches (B, N, N, C) complex64 for diffraction amplitudes (B, N, N, C) and, for the
        constrained PINN export, the groups' member offsets ``coords_relative (B, C, 2)``."""
        x = np.asarray(diffraction, dtype=np.float32)
        b, n, _, c = x.shape
        if self.constrained and coords_relative is None:
            raise ValueError("the constrained PINN export needs the groups' coords_relative")
        rel = (np.zeros((b, c, 2), np.float32) if coords_relative is None
               else np.asarray(coords_relative, dtype=np.float32).reshape(b, c, 2))
        if self.kind == "pinn":
            return self._run(x, rel)
        per_pattern = np.moveaxis(x, 3, 1).reshape(b * c, n, n, 1)
        return np.moveaxis(self._run(per_pattern, np.zeros((b * c, 1, 2), np.float32)).reshape(b, c, n, n), 1, 3)


def counts_ratio(patches: np.ndarray, probe: np.ndarray, diffraction: np.ndarray, batch: int = 256) -> np.ndarray:
    """(B, C) predicted ÷ measured total counts per pattern for patches (B, N, N, C).

    The predicted total of a patch O is ``Σ|FFT2(P·O)|²/N² = Σ|P·O|²`` (Parseval), so no
    transform is needed; the measured total is ``Σ diffraction²`` (amplitudes are sqrt(counts)).
    In batches of ``batch`` groups: the float64 work arrays never hold a chunk.
    """
    p2 = (np.abs(np.asarray(probe, np.complex128)) ** 2)[None, :, :, None]
    out = np.empty((patches.shape[0], patches.shape[3]), np.float64)
    for s in range(0, patches.shape[0], batch):
        predicted = np.sum(p2 * np.abs(patches[s : s + batch].astype(np.complex128)) ** 2, axis=(1, 2))
        measured = np.sum(np.asarray(diffraction[s : s + batch], np.float64) ** 2, axis=(1, 2))
        out[s : s + batch] = predicted / np.maximum(measured, 1e-12)
    return out


def check_offsets_fit(model, chunk: dict, path="<chunk>") -> None:
    """A PINN's group canvas (N + 2·pad, fixed at training) must hold every member of the chunk's
    groups: ``|coords_relative| ≤ pad`` on both axes, else the member's patch would wrap around
    the canvas and the overlap constraint would blend the wrong pixels."""
    if model_kind(model) != "pinn" or model_shape(model)[1] == 1:
        return
    pad = int(model.get_layer("counts").pad)
    rel = np.asarray(chunk["coords_relative"])
    worst = float(np.abs(rel).max()) if rel.size else 0.0
    if worst > pad:
        raise DataError(
            f"{path}: key 'coords_relative' has a member {worst:.1f} px from its group centre, but the model's "
            f"group canvas holds offsets up to {pad} px (set by its training and validation groups); "
            "expected groups of the geometry it was trained on (same view, neighbor_count, gridsize)"
        )


def check_chunk_matches(model, chunk: dict, path="<chunk>") -> None:
    """The chunk's patterns must have the model's N (and, for the PINN, its C)."""
    n, c = model_shape(model)
    shape = chunk["diffraction"].shape
    want_c = c if model_kind(model) == "pinn" else None
    if shape[1] != n or shape[2] != n or (want_c is not None and shape[3] != want_c):
        expected = f"(B, {n}, {n}, {want_c if want_c is not None else 'C'})"
        raise DataError(
            f"{path}: key 'diffraction' has shape {shape}, expected {expected} for the {model_kind(model)} model "
            f"(N={n}{', C=' + str(c) if want_c is not None else ''})"
        )


def predict_chunk(model, chunk: dict, batch_size: int = 64, export: str = "constrained") -> np.ndarray:
    """Predicted object patches (B, N, N, C) complex64 of a chunk's groups."""
    check_chunk_matches(model, chunk)
    return Predictor(model, batch_size, export)(chunk["diffraction"], chunk.get("coords_relative"))


def _chunk_number(chunk: dict, path) -> int:
    if "chunk" in chunk:
        return int(chunk["chunk"])
    m = re.search(r"(\d+)\D*$", Path(path).stem)
    return int(m.group(1)) if m else -1


def infer_chunk_file(model_path, chunk_path, out_path, batch_size: int = 64, export: str = "constrained") -> dict:
    """Load a model and one chunk, predict, write the inference NPZ (docs/contracts.md) atomically."""
    import keras

    model = keras.models.load_model(model_path)
    chunk = load_chunk(chunk_path, required=INFERENCE_KEYS, optional=("chunk", "gridsize", "probeGuess"))
    check_chunk_matches(model, chunk, chunk_path)
    check_offsets_fit(model, chunk, chunk_path)
    predictor = Predictor(model, batch_size, export)
    diff, rel = chunk["diffraction"], chunk["coords_relative"]
    predictor(diff[:1], rel[:1])  # trace outside the timed prediction
    t0 = time.perf_counter()
    patches = predictor(diff, rel)
    wall = time.perf_counter() - t0
    extra = {}
    if "probeGuess" in chunk:
        extra["counts_ratio"] = counts_ratio(patches, chunk["probeGuess"], diff)
    positions = chunk["coords_center"].astype(np.float64)[:, None, :] + chunk["coords_relative"].astype(np.float64)
    save_npz(
        out_path,
        patches=np.asarray(patches, dtype=np.complex64),  # no copy: a chunk of patches is 2 GB at N = 128
        positions=positions,
        group_index=chunk["group_index"].astype(np.int64),
        member_index=chunk["member_index"].astype(np.int64),
        wall_time_s=np.float64(wall),
        N=np.int64(chunk["diffraction"].shape[1]),
        chunk=np.int64(_chunk_number(chunk, chunk_path)),
        **extra,
    )
    n_patterns = patches.shape[0] * patches.shape[3]
    log.info("%s: %d groups (%d patterns) in %.3f s (%.0f patterns/s), export %s -> %s", chunk_path,
             patches.shape[0], n_patterns, wall, n_patterns / max(wall, 1e-9),
             "constrained" if predictor.constrained else "raw", out_path)
    summary = {"n_groups": int(patches.shape[0]), "wall_time_s": wall}
    if extra:
        p5, median, p95 = np.percentile(extra["counts_ratio"], [5, 50, 95])
        log.info("predicted / measured total counts per pattern: median %.3f (5–95 %%: %.3f–%.3f)", median, p5, p95)
        summary["counts_ratio_median"] = float(median)
    return summary
