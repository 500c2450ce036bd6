"""Per-chunk inference: object patches of a chunk's groups from a trained PINN or Baseline.

The PINN's prediction is its decoder output (amplitude·exp(i·phase)) for the C members, before
the overlap constraint of the physics layers; the Baseline predicts each member pattern on its
own. Batches are padded to a fixed size, so the graph is traced once and, as no layer couples
samples, a group's prediction does not depend on the rest of its batch.
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


class Predictor:
    """Amplitude and phase from diffraction amplitudes, compiled once for a fixed batch size."""

    def __init__(self, model, batch_size: int = 64):
        import keras
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.kind = model_kind(model)
        self.N, self.C = model_shape(model)
        self.batch_size = int(batch_size)
        net = keras.Model(
            model.get_layer("diffraction").output,
            [model.get_layer("amplitude").output, model.get_layer("phase").output],
        )
        self._fn = tf.function(lambda x: net(x, training=False))

    def _run(self, x: np.ndarray) -> np.ndarray:
        """(n, N, N, c) float32 → (n, N, N, c) complex64, in padded batches of ``batch_size``."""
        n, bs = len(x), self.batch_size
        out = np.empty(x.shape, dtype=np.complex64)
        for s in range(0, n, bs):
            xb = x[s : s + bs]
            k = len(xb)
            if k < bs:
                xb = np.concatenate([xb, np.zeros((bs - k,) + xb.shape[1:], xb.dtype)])
            amp, phase = (t.numpy()[:k] for t in self._fn(xb))
            out[s : s + k] = amp * np.exp(1j * phase)
        return out

    def __call__(self, diffraction: np.ndarray) -> np.ndarray:
        """Patches (B, N, N, C) complex64 for diffraction amplitudes (B, N, N, C)."""
        x = np.asarray(diffraction, dtype=np.float32)
        if self.kind == "pinn":
            return self._run(x)
        b, n, _, c = x.shape
        per_pattern = np.moveaxis(x, 3, 1).reshape(b * c, n, n, 1)
        return np.moveaxis(self._run(per_pattern).reshape(b, c, n, n), 1, 3)


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


def predict_chunk(model, chunk: dict, batch_size: int = 64) -> np.ndarray:
    """Predicted object patches (B, N, N, C) complex64 of a chunk's groups."""
    check_chunk_matches(model, chunk)
    return Predictor(model, batch_size)(chunk["diffraction"])


def _chunk_number(chunk: dict, path) -> int:
    if "chunk" in chunk:
        return int(chunk["chunk"])
    m = re.search(r"(\d+)\D*$", Path(path).stem)
    return int(m.group(1)) if m else -1


def infer_chunk_file(model_path, chunk_path, out_path, batch_size: int = 64) -> dict:
    """Load a model and one chunk, predict, write the inference NPZ (docs/contracts.md) atomically."""
    import keras

    model = keras.models.load_model(model_path)
    chunk = load_chunk(chunk_path, required=INFERENCE_KEYS, optional=("chunk", "gridsize"))
    check_chunk_matches(model, chunk, chunk_path)
    predictor = Predictor(model, batch_size)
    predictor(chunk["diffraction"][:1])  # trace outside the timed prediction
    t0 = time.perf_counter()
    patches = predictor(chunk["diffraction"])
    wall = time.perf_counter() - t0
    positions = chunk["coords_center"].astype(np.float64)[:, None, :] + chunk["coords_relative"].astype(np.float64)
    save_npz(
        out_path,
        patches=patches.astype(np.complex64),
        positions=positions,
        group_index=chunk["group_index"].astype(np.int64),
        member_index=chunk["member_index"].astype(np.int64),
        wall_time_s=np.float64(wall),
        N=np.int64(chunk["diffraction"].shape[1]),
        chunk=np.int64(_chunk_number(chunk, chunk_path)),
    )
    n_patterns = patches.shape[0] * patches.shape[3]
    log.info("%s: %d groups (%d patterns) in %.3f s (%.0f patterns/s) -> %s", chunk_path, patches.shape[0],
             n_patterns, wall, n_patterns / max(wall, 1e-9), out_path)
    return {"n_groups": int(patches.shape[0]), "wall_time_s": wall}
