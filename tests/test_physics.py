"""PtychoPINN's physics layers against Phase C: the forward model and the gridsize-2 overlap constraint."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import math

import numpy as np
import pytest
from scipy import ndimage

from ptychostudy.runtime import configure_tensorflow

tf = configure_tensorflow(1)

from ptychostudy.models import physics as ph  # noqa: E402
from ptychostudy.models.data import make_synthetic_chunks  # noqa: E402
from ptychostudy.conventions import expected_counts, fourier_shift  # noqa: E402
from ptychostudy.patches import extract_patches  # noqa: E402
from ptychostudy.simulate import make_object  # noqa: E402

N = 32


def _layer_counts(chunk: dict) -> np.ndarray:
    """Counts of the physics layer on the chunk's true patches, as (B, C, N, N)."""
    n, c = chunk["diffraction"].shape[1], chunk["diffraction"].shape[3]
    pad = ph.canvas_pad(np.abs(chunk["coords_relative"]).max(), n)
    layer = ph.PtychoForward(n, c, pad, probe=chunk["probeGuess"])
    p = chunk["patches"]
    counts = layer(
        tf.constant(np.abs(p)), tf.constant(np.angle(p)), tf.constant(chunk["coords_relative"], tf.float32)
    ).numpy()
    return np.moveaxis(counts, -1, 1)


def _rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_counts_equal_phase_c_gridsize1_subpixel():
    chunk = make_synthetic_chunks(n=N, gridsize=1, n_groups=6, chunk_size=6, step=5.3, jitter=0.2)[0]
    lam = expected_counts(chunk["probeGuess"], np.moveaxis(chunk["patches"], -1, 1))
    assert _rel(_layer_counts(chunk), lam) <= 1e-4


def test_counts_equal_phase_c_gridsize2_integer_offsets():
    # jitter 0 and an even step: members sit at integer offsets ±3 px from the group centre
    chunk = make_synthetic_chunks(n=N, gridsize=2, n_groups=5, chunk_size=5, step=6.0, jitter=0.0)[0]
    assert np.allclose(chunk["coords_relative"], np.round(chunk["coords_relative"]))
    lam = expected_counts(chunk["probeGuess"], np.moveaxis(chunk["patches"], -1, 1))
    assert _rel(_layer_counts(chunk), lam) <= 1e-4
    # total counts per pattern near the dose (the probe carries the flux)
    assert np.isclose(lam.sum(axis=(-2, -1)).mean(), 1e5, rtol=0.2)


def _merge(p: np.ndarray, rel: np.ndarray, pad: int | None = None) -> np.ndarray:
    pad = ph.canvas_pad(np.abs(rel).max(), p.shape[-1]) if pad is None else pad
    out = ph.merge_extract(tf.constant(p), tf.constant(rel, tf.float32), tf.constant(ph.blend_window(p.shape[-1])), pad)
    return out.numpy()


def test_merge_extract_keeps_consistent_patches_integer_offsets():
    obj = make_object(96, 3)
    centre = np.array([48.0, 47.0])
    rel = np.array([[[-4.0, -5.0], [5.0, -4.0], [-5.0, 4.0], [4.0, 5.0]], [[-9, 0], [9, 0], [0, -9], [0, 9.0]]])
    p = np.stack([extract_patches(obj, centre + r, N) for r in rel])  # (2, 4, N, N)
    out = _merge(p, rel)
    assert np.abs(out - p).max() < 1e-4


def test_merge_extract_subpixel_offsets_interior():
    # a band-limited object, sampled at sub-pixel positions by exact periodic Fourier shifts
    obj = make_object(96, 5)
    obj = (ndimage.gaussian_filter(obj.real, 2.0) + 1j * ndimage.gaussian_filter(obj.imag, 2.0)).astype(np.complex128)
    rel = np.array([[-4.3, -3.9], [4.1, -4.2], [-3.8, 4.4], [4.0, 3.7]])
    rel -= rel.mean(axis=0)
    corner = np.array([48.37, 47.81]) + rel - N / 2
    base = np.floor(corner).astype(int)
    shifted = fourier_shift(np.repeat(obj[None], 4, axis=0), -(corner - base))
    p = np.stack([shifted[k, b[1] : b[1] + N, b[0] : b[0] + N] for k, b in enumerate(base)])[None].astype(np.complex64)
    out = _merge(p, rel[None])
    q = N // 4
    assert np.abs(out - p)[..., q:-q, q:-q].max() < 5e-3
    assert np.abs(out - p).mean() < 5e-3


def test_merge_is_per_group():
    """A group's merged patches do not depend on the other groups of the batch."""
    rng = np.random.default_rng(0)
    p = (rng.uniform(0.5, 1, (8, 4, N, N)) * np.exp(1j * rng.uniform(-1, 1, (8, 4, N, N)))).astype(np.complex64)
    rel = rng.uniform(-6, 6, (8, 4, 2))
    rel -= rel.mean(axis=1, keepdims=True)
    pad = ph.canvas_pad(6.0, N)  # fixed by the model, whatever the batch holds
    together = _merge(p, rel, pad)
    alone = _merge(p[3:4], rel[3:4], pad)
    assert np.allclose(together[3:4], alone, atol=1e-6)


def _factors_ok(m: int) -> bool:
    for f in (2, 3, 5):
        while m % f == 0:
            m //= f
    return m == 1


def test_canvas_holds_largest_offset_at_a_fast_fft_size():
    for off, n in ((0.0, 32), (3.2, 32), (29.7, 64), (42.0, 64), (40.0, 128)):
        pad = ph.canvas_pad(off, n)
        side = n + 2 * pad
        assert pad >= off + ph.PAD_MARGIN - 1e-9 and side % 2 == 0 and _factors_ok(side)
        # the smallest such side: none in between would do
        assert not any(_factors_ok(s) for s in range(n + 2 * math.ceil(off + ph.PAD_MARGIN), side, 2))
    assert ph.fft_size(151) == 160 and ph.fft_size(150) == 150 and ph.fft_size(97) == 100


def test_poisson_nll_is_smallest_at_the_measured_counts():
    k = tf.constant(np.random.default_rng(1).poisson(20.0, (64,)).astype(np.float32) + 1)
    at = float(ph.poisson_nll(k, k))
    assert at < float(ph.poisson_nll(1.1 * k, k)) and at < float(ph.poisson_nll(0.9 * k, k))


def test_window_is_smooth_and_positive():
    w = ph.blend_window(N)
    assert w.min() >= ph.WINDOW_FLOOR * ph.WINDOW_FLOOR - 1e-7 and w.max() == pytest.approx(1.0)
    assert np.allclose(w, w.T) and np.allclose(w, w[::-1, ::-1])
