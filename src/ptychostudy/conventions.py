"""The study's physics and data conventions, in numpy: the one reference every phase follows.

docs/design.md, "Physics and data conventions". The simulation (Phase C), the patch cutting and
stitching, the metrics' registration, the PINN's TensorFlow forward model and loss
(``models.physics``) and the LSQML adapter (``lsqml``) all follow these definitions; the tests
check the TensorFlow and ptychi implementations against them (tests/test_conventions.py,
tests/test_models.py, tests/test_ptychi.py).

- **Positions** are object pixels ``(x, y)``, sub-pixel. A patch of size N is centred on its
  position: patch pixel ``[r, c]`` samples the object at ``(x + c − N/2, y + r − N/2)``.
- **Sub-pixel shifts** are band-limited Fourier shifts, :func:`fourier_shift`, with the shift
  given as ``(x, y)``; a positive shift moves content towards larger indices.
- **Expected counts** of a pattern are ``|FFT2(P · O)|² / N²`` with the zero frequency at the
  array centre (:func:`expected_counts`); by Parseval their total is ``Σ|P · O|²``, so the probe
  carries the flux. Diffraction is stored as amplitude = sqrt(counts).
- **The Poisson negative log-likelihood** of counts ``k`` under expected counts ``λ`` is, per
  pixel, ``λ − k·log(λ + ε)`` (:func:`poisson_nll`; the data-only term ``log k!`` is dropped and
  ``ε`` keeps the logarithm finite where the model predicts no photon).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

#: added to the expected counts inside the Poisson log-likelihood
POISSON_EPS = 1e-6


def fourier_shift(images: np.ndarray, shift_xy) -> np.ndarray:
    """Shift each image of ``images (..., H, W)`` by ``shift_xy (..., 2)`` pixels, (x, y), periodically.

    A positive shift moves content towards larger indices (``np.roll``'s direction for an
    integer shift). Band-limited: an exact phase ramp on the FFT grid, no interpolation blur.
    ``shift_xy`` broadcasts against the leading dimensions of ``images`` (one shift for all, or
    one per image). Returns complex128.
    """
    images = np.asarray(images)
    shift = np.asarray(shift_xy, dtype=np.float64)
    h, w = images.shape[-2:]
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    ramp_x = np.exp(-2j * np.pi * fx * shift[..., 0, None])  # (..., W)
    ramp_y = np.exp(-2j * np.pi * fy * shift[..., 1, None])  # (..., H)
    ramp = ramp_y[..., :, None] * ramp_x[..., None, :]
    return scipy.fft.ifft2(scipy.fft.fft2(images.astype(np.complex128), axes=(-2, -1)) * ramp, axes=(-2, -1))


def expected_counts(probe: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Expected photon counts ``|FFT2(P · O)|² / N²``, zero frequency at the centre, float64 (..., N, N)."""
    n = probe.shape[-1]
    exit_wave = probe.astype(np.complex128) * np.asarray(patches).astype(np.complex128)
    far = np.fft.fftshift(np.fft.fft2(exit_wave, axes=(-2, -1)), axes=(-2, -1))
    return np.abs(far) ** 2 / n**2


def poisson_nll(expected: np.ndarray, counts: np.ndarray, eps: float = POISSON_EPS) -> np.ndarray:
    """Per-pixel Poisson negative log-likelihood ``λ − k·log(λ + ε)`` (``log k!`` dropped), float64."""
    lam = np.asarray(expected, dtype=np.float64)
    return lam - np.asarray(counts, dtype=np.float64) * np.log(lam + eps)
