"""Phase G image metrics: alignment to the ground truth, then MAE/MSE/PSNR/SSIM/MS-SSIM/FRC.

Every arm is treated identically (docs/design.md, "Metrics"):

1. crop the stitched object and the ground truth to the split's scanned region;
2. register the crop to the ground truth with sub-pixel precision
   (:func:`skimage.registration.phase_cross_correlation`: phase correlation of the complex
   images apodised with a Tukey window, blind to a global phase and amplitude scale), apply
   the shift as a Fourier shift (:func:`ptychostudy.conventions.fourier_shift`) to the region widened
   by a ``margin`` (≥ the largest accepted shift) and cut the margin off again, so the content
   wrapped around by the periodic shift never enters the metrics and every arm is scored on
   exactly the same crop (the scanned region; the reconstructions extend about N/2 beyond
   the scan positions, so the margin holds real content);
3. remove the global phase offset ``arg Σ truth·conj(recon)``;
4. match the amplitude scale by least squares, ``s = Σ|t||r| / Σ|r|²``.

Phase convention (the absolute phase of an object is not measurable, so no metric may depend
on it): the ground-truth phase is taken relative to the phase of its own mean,
``φ_t = arg(t · e^{−i·arg Σt})``, unwrapped (:func:`skimage.restoration.unwrap_phase`) only if
it has 2π jumps (the synthetic objects do not); the reconstruction's phase is taken *relative
to the ground truth*, ``φ_r = φ_t + wrap(arg r − arg t)``, i.e. the error is the phase
difference wrapped into (−π, π], which needs no unwrapping of the (noisy) reconstruction; then
**both images are shifted so that the truth's minimum is 0** (the usual image convention for
SSIM's luminance term, whose value depends on the images' absolute level). A constant added to
the truth's phase, or to the reconstruction's, changes no metric (tests/test_metrics.py: within
1e-9). The alignment is carried in complex128 up to the metrics for that reason.

SSIM follows Wang et al. (2004): Gaussian window σ = 1.5 (11 × 11), population covariance,
K1 = 0.01, K2 = 0.03, ``data_range`` = range of the ground truth (also the PSNR peak).
MS-SSIM (Wang, Simoncelli & Bovik 2003) uses the standard weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333) and 2 × 2 mean-pooling between scales; the number of
scales is reduced so the coarsest image is still at least the 11-pixel SSIM window
(``M = min(5, 1 + floor(log2(min_side / 11)))``), the weights then renormalised to sum 1.
As in ``tf.image.ssim_multiscale``, negative per-scale values are clipped to 0.

FRC (Fourier ring correlation) of each component against the ground truth, both apodised with
the same Tukey window; ring k holds frequencies with ``round(|f|·n) = k`` (n = the shorter
side, rings 0 … n/2); each image has its window-weighted mean removed before the transform,
so the DC ring carries no information: it is NaN in the curve and skipped. The resolution at a threshold is read at
the first ring ``k ≥ 1`` whose FRC falls below it: the crossing frequency is interpolated
linearly between rings k−1 and k and reported as a period in pixels (1 / frequency) together
with the ring index k. A curve that never falls below the threshold is reported as resolved
to Nyquist (2 px for even n) with ring ``n/2 + 1``; one already below it at ring 1 as ``inf``
px (nothing resolved). Rings without signal (e.g. a flat phase) count as FRC 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal.windows import tukey
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.registration import phase_cross_correlation

from .conventions import fourier_shift

#: keyword arguments of every SSIM in this module (Wang et al. 2004)
SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
SSIM_WINDOW = 11  # 2·int(3.5·1.5 + 0.5) + 1, skimage's Gaussian window for σ = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
FRC_THRESHOLDS = {"frc50": 0.5, "frc17": 1.0 / 7.0}
COMPONENTS = ("amplitude", "phase")
#: Tukey taper of the crops during registration (phase correlation, edges apodised)
REGISTRATION_TAPER = 0.3
#: image metrics per component, in the order they are reported
METRIC_NAMES = (
    "mae",
    "mse",
    "psnr",
    "ssim",
    "ms_ssim",
    "frc50_px",
    "frc50_ring",
    "frc17_px",
    "frc17_ring",
)


# ---- alignment ------------------------------------------------------------------------------
@dataclass
class Alignment:
    """A reconstruction registered to the ground truth over the same crop."""

    recon: np.ndarray  # aligned reconstruction, complex128 (h, w)
    truth: np.ndarray  # ground-truth crop, complex128 (h, w)
    offset: tuple  # (dy, dx) pixels: the shift applied to the reconstruction (0 when rejected)
    scale: float  # amplitude scale applied to the reconstruction
    phase_offset: float  # radians added to the reconstruction's phase
    crop: tuple  # (y0, y1, x0, x1) of the aligned images in object pixels
    shift_rejected: bool = False  # registration exceeded max_shift and was not applied
    measured: tuple = (0.0, 0.0)  # (dy, dx) the registration measured, applied or not


def region_slices(region, shape=None) -> tuple[slice, slice]:
    """(slice_y, slice_x) from slices, a (y0, y1, x0, x1) box, or a boolean mask (its bounding box)."""
    if isinstance(region, tuple) and len(region) == 2 and all(isinstance(s, slice) for s in region):
        return region
    arr = np.asarray(region)
    if arr.dtype == bool:
        rows = np.flatnonzero(arr.any(axis=1))
        cols = np.flatnonzero(arr.any(axis=0))
        if not len(rows):
            raise ValueError("region mask is empty")
        return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    if arr.shape == (4,):
        y0, y1, x0, x1 = (int(v) for v in arr)
        return slice(y0, y1), slice(x0, x1)
    raise ValueError(f"region must be two slices, (y0, y1, x0, x1) or a boolean mask; got {region!r}")


def region_from_positions(xcoords, ycoords, shape) -> tuple[slice, slice]:
    """Integer bounding box of scan positions (x, y), clipped to the object ``shape``."""
    x = np.asarray(xcoords, dtype=np.float64)
    y = np.asarray(ycoords, dtype=np.float64)
    if not len(x):
        raise ValueError("region_from_positions: no positions")
    h, w = shape
    y0, y1 = max(int(np.floor(y.min())), 0), min(int(np.ceil(y.max())) + 1, h)
    x0, x1 = max(int(np.floor(x.min())), 0), min(int(np.ceil(x.max())) + 1, w)
    return slice(y0, y1), slice(x0, x1)


def _grow(sl: slice, n: int, size: int) -> slice:
    """``sl`` (within 0..n) grown symmetrically to at least ``size`` pixels, clipped to 0..n."""
    a, b, _ = sl.indices(n)
    if b - a >= size:
        return slice(a, b)
    extra = size - (b - a)
    a = max(a - extra // 2, 0)
    b = min(a + size, n)
    return slice(max(b - size, 0), b)


def align(
    recon: np.ndarray,
    truth: np.ndarray,
    region,
    *,
    upsample_factor: int = 100,
    max_shift: float = 8.0,
    margin: int | None = None,
) -> Alignment:
    """Crop, register (sub-pixel), remove the global phase and match the amplitude scale.

    ``recon`` and ``truth`` are complex (L, L) in the same pixel frame; ``region`` as in
    :func:`region_slices` (grown to the 11-px SSIM window if smaller). The shift is measured
    between the region crops and applied, as a Fourier shift, to the region widened by
    ``margin`` pixels (default ``ceil(max_shift)``); cutting the margin off again keeps the
    wrapped-around content out. A shift larger than ``max_shift`` on either axis (a
    reconstruction without usable structure) is not applied (``shift_rejected``).
    """
    if recon.shape != truth.shape:
        raise ValueError(f"align: reconstruction shape {recon.shape} differs from ground truth {truth.shape}")
    big_h, big_w = truth.shape
    if min(big_h, big_w) < SSIM_WINDOW:
        raise ValueError(f"align: object {truth.shape} is smaller than the {SSIM_WINDOW}-px SSIM window")
    sy, sx = region_slices(region, truth.shape)
    sy, sx = _grow(sy, big_h, SSIM_WINDOW), _grow(sx, big_w, SSIM_WINDOW)
    r = np.asarray(recon)[sy, sx].astype(np.complex128)
    t = np.asarray(truth)[sy, sx].astype(np.complex128)
    h, w = t.shape

    rejected = False
    measured = np.zeros(2)
    if np.any(r != 0) and np.ptp(np.abs(r)) + np.ptp(np.angle(r)) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # apodise both crops so their edges do not pull the correlation peak towards 0
            apod = np.outer(tukey(h, REGISTRATION_TAPER), tukey(w, REGISTRATION_TAPER))
            measured, _, _ = phase_cross_correlation(t * apod, r * apod, upsample_factor=upsample_factor)
        measured = np.asarray(measured, dtype=np.float64)
        shift = measured
        if not np.all(np.isfinite(shift)) or np.any(np.abs(shift) > max_shift):
            shift, rejected = np.zeros(2), True
    else:  # a flat image has no structure to register
        shift = np.zeros(2)
    if np.any(shift != 0):
        m = math.ceil(max_shift) if margin is None else int(margin)
        ey = slice(max(sy.start - m, 0), min(sy.stop + m, big_h))
        ex = slice(max(sx.start - m, 0), min(sx.stop + m, big_w))
        wide = fourier_shift(np.asarray(recon)[ey, ex], (shift[1], shift[0]))  # shift is (dy, dx)
        oy, ox = sy.start - ey.start, sx.start - ex.start
        r = wide[oy : oy + h, ox : ox + w]

    cross = np.sum(t * np.conj(r))
    phase_offset = float(np.angle(cross)) if abs(cross) > 0 else 0.0
    r = r * np.exp(1j * phase_offset)
    denom = float(np.sum(np.abs(r) ** 2))
    scale = float(np.sum(np.abs(t) * np.abs(r)) / denom) if denom > 0 else 1.0
    r = r * scale
    return Alignment(
        recon=r,
        truth=t,
        offset=(float(shift[0]), float(shift[1])),
        scale=scale,
        phase_offset=phase_offset,
        crop=(sy.start, sy.stop, sx.start, sx.stop),
        shift_rejected=rejected,
        measured=(float(measured[0]), float(measured[1])),
    )


def truth_phase(truth: np.ndarray) -> np.ndarray:
    """Phase of the ground truth relative to the phase of its mean (so a constant added to it
    changes nothing), unwrapped only if it has 2π jumps between neighbours."""
    t = truth.astype(np.complex128)
    mean = np.sum(t)
    phi = np.angle(t * (np.conj(mean) / abs(mean)) if abs(mean) > 0 else t)
    jumps = max(
        np.max(np.abs(np.diff(phi, axis=0)), initial=0.0),
        np.max(np.abs(np.diff(phi, axis=1)), initial=0.0),
    )
    if jumps > np.pi:
        from skimage.restoration import unwrap_phase

        phi = unwrap_phase(phi)
    return phi


def display_phase(truth: np.ndarray) -> np.ndarray:
    """The truth's phase as every phase metric sees it (:func:`truth_phase`, shifted so its
    minimum is 0): the reference image and colour range of a figure."""
    phi = truth_phase(truth)
    return phi - float(phi.min())


def components(recon: np.ndarray, truth: np.ndarray) -> dict:
    """{"amplitude": (recon, truth), "phase": (recon, truth)} as float64 images (module
    docstring: the phase pair relative to the truth, shifted so the truth's minimum is 0)."""
    r = recon.astype(np.complex128)
    t = truth.astype(np.complex128)
    phi_t = truth_phase(t)
    # the wrapped difference to the truth; a pixel the reconstruction left at 0 has no phase of
    # its own: it gets the truth's mean phase (0 in this frame), never the truth's local phase
    phi_r = np.where(r != 0, phi_t + np.angle(r * np.conj(t)), 0.0)
    floor = float(phi_t.min())
    return {"amplitude": (np.abs(r), np.abs(t)), "phase": (phi_r - floor, phi_t - floor)}


# ---- scalar metrics -------------------------------------------------------------------------
def data_range(truth: np.ndarray) -> float:
    """Peak for PSNR/SSIM: the ground truth's range (1.0 for a flat ground truth)."""
    rng = float(np.max(truth) - np.min(truth))
    return rng if rng > 0 else 1.0


def psnr(recon: np.ndarray, truth: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # inf for a perfect reconstruction
        return float(peak_signal_noise_ratio(truth, recon, data_range=data_range(truth)))


def ssim(recon: np.ndarray, truth: np.ndarray) -> float:
    return float(structural_similarity(truth, recon, data_range=data_range(truth), **SSIM_KW))


def _ssim_and_cs(x: np.ndarray, y: np.ndarray, rng: float) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term, computed exactly as skimage's Gaussian SSIM."""
    filt = {"sigma": SSIM_KW["sigma"], "truncate": 3.5, "mode": "reflect"}
    ux, uy = ndimage.gaussian_filter(x, **filt), ndimage.gaussian_filter(y, **filt)
    vx = ndimage.gaussian_filter(x * x, **filt) - ux * ux
    vy = ndimage.gaussian_filter(y * y, **filt) - uy * uy
    vxy = ndimage.gaussian_filter(x * y, **filt) - ux * uy
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    cs = (2 * vxy + c2) / (vx + vy + c2)
    lum = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
    pad = (SSIM_WINDOW - 1) // 2
    inner = (slice(pad, -pad), slice(pad, -pad))
    return float((lum * cs)[inner].mean()), float(cs[inner].mean())


def ms_ssim_scales(shape) -> int:
    """Number of MS-SSIM scales for an image: ≤ 5, the coarsest side ≥ the SSIM window."""
    side = min(shape)
    if side < SSIM_WINDOW:
        return 0
    return int(min(len(MS_SSIM_WEIGHTS), 1 + math.floor(math.log2(side / SSIM_WINDOW))))


def _pool2(img: np.ndarray) -> np.ndarray:
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    return img[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ms_ssim(recon: np.ndarray, truth: np.ndarray, scales: int | None = None) -> float:
    """Multi-scale SSIM with scales adapted to the image size (module docstring)."""
    m = ms_ssim_scales(truth.shape) if scales is None else int(scales)
    if m < 1:
        return float("nan")
    w = np.asarray(MS_SSIM_WEIGHTS[:m], dtype=np.float64)
    w = w / w.sum()
    rng = data_range(truth)
    x, y = truth.astype(np.float64), recon.astype(np.float64)
    values = []
    for j in range(m):
        s, cs = _ssim_and_cs(x, y, rng)
        values.append(s if j == m - 1 else cs)
        if j < m - 1:
            x, y = _pool2(x), _pool2(y)
    values = np.maximum(np.asarray(values), 0.0)
    return float(np.prod(values**w))


# ---- FRC ------------------------------------------------------------------------------------
def frc_curve(recon: np.ndarray, truth: np.ndarray, taper: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two real images: (frequency in cycles/pixel, FRC) per ring.

    NaN where a ring has no signal in either image, and always at ring 0 (means removed).
    """
    h, w = truth.shape
    n = min(h, w)
    win = np.outer(tukey(h, taper), tukey(w, taper))

    def spectrum(img):
        # remove the window-weighted mean first: otherwise mean × window leaks the window's own
        # spectrum into every ring and a flat image would "correlate" with any other
        img = img.astype(np.float64)
        spec = np.fft.fft2((img - np.sum(img * win) / np.sum(win)) * win)
        # power below this is rounding left by the mean removal (Parseval: Σ|F|² = hw·Σ|x|²)
        return spec, 1e-20 * h * w * np.sum((img * win) ** 2)

    (f1, floor1), (f2, floor2) = spectrum(recon), spectrum(truth)
    fy, fx = np.fft.fftfreq(h), np.fft.fftfreq(w)
    ring = np.rint(np.hypot(fy[:, None], fx[None, :]) * n).astype(np.int64).ravel()
    n_rings = n // 2 + 1
    keep = ring < n_rings
    ring = ring[keep]
    num = np.bincount(ring, (f1 * np.conj(f2)).real.ravel()[keep], n_rings)
    p1 = np.bincount(ring, (np.abs(f1) ** 2).ravel()[keep], n_rings)
    p2 = np.bincount(ring, (np.abs(f2) ** 2).ravel()[keep], n_rings)
    frc = np.full(n_rings, np.nan)
    ok = (p1 > floor1) & (p2 > floor2)
    ok[0] = False  # the DC ring: both means were removed
    frc[ok] = num[ok] / np.sqrt(p1[ok] * p2[ok])
    return np.arange(n_rings) / n, frc


def frc_resolution(freq: np.ndarray, frc: np.ndarray, threshold: float) -> tuple[float, int]:
    """(period in pixels, ring index) at the first ring k ≥ 1 where the FRC falls below ``threshold``."""
    vals = np.nan_to_num(np.asarray(frc, dtype=np.float64), nan=0.0)
    below = np.flatnonzero(vals[1:] < threshold) + 1
    if not len(below):
        return 1.0 / freq[-1] if freq[-1] > 0 else float("nan"), len(freq)
    k = int(below[0])
    if k == 1:  # below the threshold from the first ring on: nothing resolved
        return float("inf"), k
    a, b = vals[k - 1], vals[k]
    t = (a - threshold) / (a - b) if a > b else 0.0
    t = min(max(t, 0.0), 1.0)
    f = freq[k - 1] + t * (freq[k] - freq[k - 1])
    return (1.0 / f if f > 0 else float("inf")), k


# ---- everything for one aligned pair ---------------------------------------------------------
def component_metrics(recon: np.ndarray, truth: np.ndarray) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """All scalar metrics of one real component (``METRIC_NAMES``) and its FRC curve."""
    recon = np.asarray(recon, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    err = recon - truth
    out = {
        "mae": float(np.mean(np.abs(err))),
        "mse": float(np.mean(err**2)),
        "psnr": psnr(recon, truth),
        "ssim": ssim(recon, truth),
        "ms_ssim": ms_ssim(recon, truth),
    }
    freq, frc = frc_curve(recon, truth)
    for name, thr in FRC_THRESHOLDS.items():
        px, ring = frc_resolution(freq, frc, thr)
        out[f"{name}_px"] = px
        out[f"{name}_ring"] = float(ring)
    return out, (freq, frc)


def evaluate(alignment: Alignment) -> tuple[dict, dict]:
    """Metrics {component: {metric: value}} and FRC curves {component: (freq, frc)} of an alignment."""
    metrics, curves = {}, {}
    for comp, (r, t) in components(alignment.recon, alignment.truth).items():
        metrics[comp], curves[comp] = component_metrics(r, t)
    return metrics, curves
