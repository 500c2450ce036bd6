"""The conventions module is the reference: its definitions against first principles, and the
TensorFlow adapter (``models.physics``) against it. The ptychi adapter is checked against it in
tests/test_ptychi.py (its own process: torch and TensorFlow never share one)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy import ndimage

from ptychostudy import conventions as cv
from ptychostudy.patches import extract_patches
from ptychostudy.runtime import configure_tensorflow
from ptychostudy.simulate import make_object, make_probe

tf = configure_tensorflow(1)

from ptychostudy.models import physics as ph  # noqa: E402


def test_integer_fourier_shift_is_a_roll_in_x_y_order():
    img = np.random.default_rng(0).normal(size=(3, 12, 20)) + 0j
    out = cv.fourier_shift(img, np.array([[3, 0], [0, 2], [-5, 7]]))
    np.testing.assert_allclose(out[0], np.roll(img[0], 3, axis=1), atol=1e-12)  # x: columns
    np.testing.assert_allclose(out[1], np.roll(img[1], 2, axis=0), atol=1e-12)  # y: rows
    np.testing.assert_allclose(out[2], np.roll(img[2], (7, -5), axis=(0, 1)), atol=1e-12)


def test_fractional_fourier_shift_agrees_with_scipy_and_inverts():
    img = make_object(48, 3)[:40, :32].astype(np.complex128)
    shift_xy = (0.37, -1.6)
    ours = cv.fourier_shift(img, shift_xy)
    ref = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img), (shift_xy[1], shift_xy[0])))
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    np.testing.assert_allclose(cv.fourier_shift(ours, (-0.37, 1.6)), img, atol=1e-12)


def test_expected_counts_obey_parseval_and_centre_the_zero_frequency():
    probe = make_probe(32, 0.3, 3.0)
    patches = extract_patches(make_object(96, 1), np.array([[40.3, 50.8], [55.0, 41.5]]), 32)
    lam = cv.expected_counts(probe, patches)
    np.testing.assert_allclose(lam.sum(axis=(-2, -1)), np.sum(np.abs(probe * patches) ** 2, axis=(-2, -1)),
                               rtol=1e-6)
    flat = cv.expected_counts(np.ones((16, 16)), np.ones((1, 16, 16)))[0]
    assert flat[8, 8] == flat.max() and np.isclose(flat.sum(), 256)  # all the light at pixel N/2


def test_poisson_nll_matches_the_log_likelihood_and_is_smallest_at_the_data():
    rng = np.random.default_rng(2)
    lam = rng.uniform(0.5, 30, 500)
    k = rng.poisson(lam).astype(float)
    from scipy.stats import poisson

    from math import lgamma

    log_k_fact = np.array([lgamma(x + 1) for x in k])
    np.testing.assert_allclose(cv.poisson_nll(lam, k, eps=0.0), -poisson.logpmf(k, lam) - log_k_fact, rtol=1e-12)
    at = cv.poisson_nll(k + 1, k + 1).sum()
    assert at < cv.poisson_nll(1.1 * (k + 1), k + 1).sum() and at < cv.poisson_nll(0.9 * (k + 1), k + 1).sum()


def test_tensorflow_forward_model_and_loss_follow_the_conventions():
    probe = make_probe(32, 0.3, 3.0)
    patches = extract_patches(make_object(96, 4), np.array([[40.3, 50.8], [55.0, 41.5]]), 32)
    ref = cv.expected_counts(probe, patches)
    tf_counts = ph.far_field_counts(tf.constant(probe), tf.constant(patches)).numpy()
    assert np.linalg.norm(tf_counts - ref) / np.linalg.norm(ref) < 1e-5
    k = np.random.default_rng(3).poisson(ref).astype(np.float32)
    np.testing.assert_allclose(float(ph.poisson_nll(tf.constant(ref, tf.float32), tf.constant(k))),
                               cv.poisson_nll(ref, k).mean(), rtol=1e-5)


def test_tensorflow_shift_ramp_follows_the_numpy_shift():
    img = make_object(40, 5)[:32, :32].astype(np.complex64)
    shifts = np.array([[1.3, -0.4], [-2.0, 3.5]], np.float32)
    ramp = ph.shift_ramp(tf.constant(shifts), 32).numpy()
    ours = np.fft.ifft2(np.fft.fft2(img)[None] * ramp)
    np.testing.assert_allclose(ours, cv.fourier_shift(np.stack([img, img]), shifts), atol=2e-5)
