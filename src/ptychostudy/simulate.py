"""Phase C physics: synthetic probe and object, the forward model and Poisson counts.

Conventions (:mod:`ptychostudy.conventions`): expected counts of pattern j are
``|FFT2(P · O_j)|² / N²`` with the zero frequency at the array centre, so by Parseval the total
expected counts of a pattern equal ``Σ|P · O_j|²``; the probe carries the flux and is scaled so
that the mean total expected counts per pattern equal the dose. Diffraction is stored as
amplitude = sqrt(counts), float32.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .conventions import expected_counts
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


#: kinds of resolution target the object generator draws from (:func:`resolution_targets`)
TARGET_KINDS = ("star", "bars", "rings", "ellipse")


def _target(kind: str, u: np.ndarray, v: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Indicator of one target in its own rotated frame (u, v pixels from its centre)."""
    r = np.hypot(u, v)
    if kind == "star":  # Siemens star: every orientation, periods from the pixel scale up
        spokes = int(rng.integers(6, 25))
        return (np.cos(spokes * np.arctan2(v, u)) > 0) & (r < radius)
    if kind == "bars":  # a bar group: 3-5 bars of one period (2-8 px) in one orientation
        period = float(np.exp(rng.uniform(np.log(2.0), np.log(8.0))))
        half_width = 0.5 * period * int(rng.integers(3, 6))
        return (np.abs(u) < half_width) & (np.abs(v) < radius) & (np.cos(2 * np.pi * u / period) > 0)
    if kind == "rings":  # concentric rings: edges of every orientation at one period (3-10 px)
        period = float(np.exp(rng.uniform(np.log(3.0), np.log(10.0))))
        return (np.cos(2 * np.pi * r / period) > 0) & (r < radius)
    if kind == "ellipse":  # a solid ellipse: one sharp, curved edge
        ratio = rng.uniform(0.35, 1.0)
        return (u / radius) ** 2 + (v / (ratio * radius)) ** 2 < 1.0
    raise ValueError(f"unknown target kind {kind!r}; expected one of {list(TARGET_KINDS)}")


def resolution_targets(size: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A (size, size) layer in [0, 1] of resolution targets spread over the whole object.

    One target per cell of a square lattice of pitch ``2·scale`` pixels (so the density is the
    same everywhere), at a random place in its cell, of a random kind (:data:`TARGET_KINDS`),
    radius (log-uniform in [0.35, 1]·scale), orientation and contrast (0.5-1). Overlapping
    targets merge (maximum). Edges are softened by a Gaussian of 0.6 px, as the old star's were.
    """
    pitch = 2.0 * float(scale)
    cells = max(int(np.ceil(size / pitch)), 1)
    layer = np.zeros((size, size))
    for cy in range(cells):
        for cx in range(cells):
            kind = TARGET_KINDS[int(rng.integers(len(TARGET_KINDS)))]
            radius = float(np.exp(rng.uniform(np.log(0.35 * scale), np.log(scale))))
            x0, y0 = (np.array([cx, cy]) + rng.uniform(0.0, 1.0, 2)) * pitch
            angle, contrast = rng.uniform(0.0, 2 * np.pi), rng.uniform(0.5, 1.0)
            reach = int(np.ceil(radius)) + 1
            ys = slice(max(int(y0) - reach, 0), min(int(y0) + reach + 1, size))
            xs = slice(max(int(x0) - reach, 0), min(int(x0) + reach + 1, size))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            yy, xx = np.mgrid[ys, xs]
            dx, dy = xx - x0, yy - y0
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            mark = contrast * _target(kind, u, v, radius, rng)
            layer[ys, xs] = np.maximum(layer[ys, xs], mark)
    return ndimage.gaussian_filter(layer, 0.6)


def make_object(size: int, seed, scale: float = 32.0) -> np.ndarray:
    """A synthetic complex object (size × size) with fine structure everywhere.

    Phase: a multi-scale Gaussian random field (correlation lengths 12, 4 and 1.5 px) plus
    resolution targets (:func:`resolution_targets`: Siemens stars, bar groups, ring targets and
    ellipses at random places, sizes ~``scale`` px, orientations and contrasts), so edges of
    every orientation and several scales are spread evenly over the object, with no central
    feature and no symmetry. Amplitude in (0, 1]: a smooth random field with the targets
    imprinted as absorption. Phase within about (−1.3, 2.1) rad: no 2π wraps. Deterministic
    under ``seed`` (an int or a seed sequence's entropy list); independent draws for other seeds.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    g = sum(w * _smooth_field(rng, shape, s) for w, s in ((0.6, 12.0), (0.3, 4.0), (0.15, 1.5)))
    a = _smooth_field(rng, shape, 6.0)
    targets = resolution_targets(size, rng, scale)
    phase = 0.4 * np.pi * np.tanh(0.6 * g) + 0.8 * targets
    amplitude = np.clip(0.8 + 0.12 * np.tanh(a) - 0.3 * targets, 0.05, 1.0)
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def illumination_totals(obj: np.ndarray, probe: np.ndarray, positions: np.ndarray, batch: int = 512) -> np.ndarray:
    """Σ|P·O_j|² per position (float64): the total expected counts of each pattern (Parseval),
    computed batch by batch from the patches alone (no transform)."""
    n = probe.shape[-1]
    p2 = np.abs(probe.astype(np.complex128)) ** 2
    return np.concatenate(
        [np.sum(p2[None] * np.abs(extract_patches(obj, positions[s : s + batch], n)) ** 2, axis=(-2, -1))
         for s in range(0, len(positions), batch)]
        or [np.zeros(0)]
    )


def dose_scaled_probe(probe: np.ndarray, totals: np.ndarray, dose: float) -> np.ndarray:
    """The probe scaled so that the mean total expected counts over ``totals`` equal ``dose``."""
    return (probe * np.sqrt(dose / float(np.mean(totals)))).astype(np.complex64)


def amplitude_batches(obj, scaled_probe, positions, rng: np.random.Generator, batch: int = 512):
    """Yield Poisson-sampled amplitudes sqrt(counts) (b, N, N) float32 for consecutive batches of
    ``positions``: memory is one batch, whatever the number of positions."""
    n = scaled_probe.shape[-1]
    for s in range(0, len(positions), batch):
        lam = expected_counts(scaled_probe, extract_patches(obj, positions[s : s + batch], n))
        yield np.sqrt(rng.poisson(lam)).astype(np.float32)


def simulate_amplitudes(
    obj: np.ndarray,
    probe: np.ndarray,
    positions: np.ndarray,
    dose: float,
    rng: np.random.Generator,
    batch: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-sampled diffraction amplitudes sqrt(counts) (B, N, N) float32, and the dose-scaled probe.

    In memory, for small scans (tests, benchmarks); Phase C streams the same steps
    (:func:`illumination_totals`, :func:`dose_scaled_probe`, :func:`amplitude_batches`) to disk.
    """
    n = probe.shape[-1]
    scaled = dose_scaled_probe(probe, illumination_totals(obj, probe, positions, batch), dose)
    out = np.empty((len(positions), n, n), dtype=np.float32)
    for i, block in enumerate(amplitude_batches(obj, scaled, positions, rng, batch)):
        out[i * batch : i * batch + len(block)] = block
    return out, scaled
