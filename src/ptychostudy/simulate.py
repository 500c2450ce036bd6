"""Phase C physics: synthetic probe and object, the forward model and Poisson counts.

Conventions (DESIGN §3): expected counts of pattern j are ``|FFT2(P · O_j)|² / N²`` with the
zero frequency at the array centre, so by Parseval the total expected counts of a pattern equal
``Σ|P · O_j|²``; the probe carries the flux and is scaled so that the mean total expected counts
per pattern equal the dose. Diffraction is stored as amplitude = sqrt(counts), float32.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .patches import extract_patches


def make_probe(n: int, pupil_radius: float, defocus: float) -> np.ndarray:
    """A focused fly-scan-like probe: a circular pupil with a defocus phase, propagated to the sample.

    ``pupil_radius`` is the pupil radius as a fraction of the Nyquist frequency (N/2 pixels of
    the N×N frequency grid); ``defocus`` the quadratic phase at the pupil edge in radians.
    The result has a bright core, Airy side lobes and a curved phase; it is centred at pixel
    N/2 and normalised to unit total intensity (Σ|P|² = 1).
    """
    k = np.arange(n) - n // 2
    kx, ky = np.meshgrid(k, k)
    rho = np.hypot(kx, ky) / (pupil_radius * n / 2)
    pupil = (rho <= 1.0) * np.exp(1j * defocus * rho**2)
    probe = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(pupil)))
    probe /= np.sqrt(np.sum(np.abs(probe) ** 2))
    return probe.astype(np.complex64)


def probe_diameter(probe: np.ndarray, fraction: float = 0.9) -> float:
    """Diameter (pixels) of the disc about the intensity centroid that holds ``fraction`` of the intensity."""
    inten = np.abs(probe.astype(np.complex128)) ** 2
    total = inten.sum()
    n0, n1 = inten.shape
    yy, xx = np.mgrid[0:n0, 0:n1]
    cy = (inten * yy).sum() / total
    cx = (inten * xx).sum() / total
    r = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(r)
    cum = np.cumsum(inten.ravel()[order]) / total
    return float(2.0 * r[order][np.searchsorted(cum, fraction)])


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / field.std()


def make_object(size: int, seed: int) -> np.ndarray:
    """A synthetic complex object (size × size) with detail at many scales.

    Phase: a multi-scale Gaussian random field plus a Siemens star (fine radial detail up to
    the pixel scale at its centre); amplitude in (0, 1]: a smooth random field with the star
    imprinted as absorption. Deterministic under ``seed``.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    g = sum(w * _smooth_field(rng, shape, s) for w, s in ((0.6, 12.0), (0.3, 4.0), (0.15, 1.5)))
    a = _smooth_field(rng, shape, 6.0)
    yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    theta = np.arctan2(yy, xx)
    r = np.hypot(xx, yy)
    star = (np.cos(16 * theta) > 0) & (r < 0.3 * size)
    star = ndimage.gaussian_filter(star.astype(float), 0.6)
    phase = 0.5 * np.pi * np.tanh(0.6 * g) + 0.8 * star
    amplitude = np.clip(0.8 + 0.12 * np.tanh(a) - 0.3 * star, 0.05, 1.0)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def expected_counts(probe: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Expected photon counts ``|FFT2(P · O)|² / N²``, DC at the centre, float64 (B, N, N)."""
    n = probe.shape[-1]
    exit_wave = probe.astype(np.complex128)[None] * patches.astype(np.complex128)
    far = np.fft.fftshift(np.fft.fft2(exit_wave, axes=(-2, -1)), axes=(-2, -1))
    return np.abs(far) ** 2 / n**2


def simulate_amplitudes(
    obj: np.ndarray,
    probe: np.ndarray,
    positions: np.ndarray,
    dose: float,
    rng: np.random.Generator,
    batch: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-sampled diffraction amplitudes sqrt(counts) (B, N, N) float32, and the dose-scaled probe.

    The probe is scaled to the dose over all ``positions`` first, then patterns are simulated in
    batches so memory stays bounded by the output array.
    """
    n = probe.shape[-1]
    # Σ|P·O_j|² needs only |O_j|²: compute the scale from patch intensities batch by batch
    totals = np.concatenate(
        [
            np.sum(
                np.abs(probe.astype(np.complex128)[None] * extract_patches(obj, positions[s : s + batch], n))
                ** 2,
                axis=(-2, -1),
            )
            for s in range(0, len(positions), batch)
        ]
    )
    scaled = (probe * np.sqrt(dose / totals.mean())).astype(np.complex64)
    out = np.empty((len(positions), n, n), dtype=np.float32)
    for s in range(0, len(positions), batch):
        lam = expected_counts(scaled, extract_patches(obj, positions[s : s + batch], n))
        out[s : s + batch] = np.sqrt(rng.poisson(lam)).astype(np.float32)
    return out, scaled
