"""Sub-pixel patch extraction and placement on an object canvas.

Convention (:mod:`ptychostudy.conventions`): scan positions are object-pixel coordinates
``(x, y)``; a patch of size N is centred on its position, i.e. patch pixel ``[r, c]`` samples the
object at ``(x + c - N/2, y + r - N/2)``. Integer positions are exact slices; the fractional
part is applied as the conventions' band-limited Fourier shift on a padded window, so no
interpolation blur enters the simulated data or the stitched reconstructions.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from .conventions import fourier_shift

#: padding (pixels, each side) around a patch when a fractional shift is applied
SHIFT_PAD = 4


def padded_size(n: int) -> int:
    """Window size for the Fourier shift: N plus the padding, rounded up to a fast FFT length."""
    return scipy.fft.next_fast_len(n + 2 * SHIFT_PAD)


def _split_positions(positions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left integer corner of each patch and the fractional remainder (B, 2) as (x, y)."""
    corner = positions - n / 2.0
    base = np.floor(corner).astype(np.int64)
    return base, corner - base


def extract_patches(obj: np.ndarray, positions: np.ndarray, n: int, batch: int = 256) -> np.ndarray:
    """Object patches ``(B, n, n)`` complex64 centred on ``positions (B, 2)`` (x, y), sub-pixel.

    Raises ValueError when a patch (plus the shift padding) would leave the object.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    base, frac = _split_positions(positions, n)
    p = SHIFT_PAD
    h, w = obj.shape
    if positions.size and (
        base.min() - p < 0 or base[:, 0].max() - p + padded_size(n) > w
        or base[:, 1].max() - p + padded_size(n) > h
    ):
        raise ValueError(
            f"scan positions reach outside the object ({h}x{w}) for patch size {n}: "
            f"x in [{positions[:, 0].min():.1f}, {positions[:, 0].max():.1f}], "
            f"y in [{positions[:, 1].min():.1f}, {positions[:, 1].max():.1f}]"
        )
    m = padded_size(n)
    rr = np.arange(m)
    out = np.empty((len(positions), n, n), dtype=np.complex64)
    for s in range(0, len(positions), batch):
        b = base[s : s + batch]
        rows = (b[:, 1] - p)[:, None, None] + rr[None, :, None]
        cols = (b[:, 0] - p)[:, None, None] + rr[None, None, :]
        win = obj[rows, cols].astype(np.complex128)
        exact = np.all(frac[s : s + batch] == 0, axis=1)
        shifted = win.copy()
        if not exact.all():
            # sample the object at +frac: shift content towards smaller indices
            shifted[~exact] = fourier_shift(win[~exact], -frac[s : s + batch][~exact])
        out[s : s + batch] = shifted[:, p : p + n, p : p + n]
    return out


def shifted_contributions(
    patches: np.ndarray,
    positions: np.ndarray,
    window: np.ndarray,
    shape: tuple[int, int],
    with_weight: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each patch's windowed values shifted onto the canvas grid, and where they land.

    Returns ``(flat, values, weights)``: flat canvas indices ``(B, m·m)`` int64, the shifted
    ``window · patch`` ``(B, m·m)`` complex128 and, if ``with_weight``, the shifted window
    ``(B, m·m)`` float64 (None otherwise: its Fourier shift is half the work). ``m`` is N plus
    the shift padding; raises ValueError when a patch would leave the ``shape`` canvas.
    """
    n = patches.shape[-1]
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    base, frac = _split_positions(positions, n)
    p = SHIFT_PAD
    h, w = shape
    exact = np.all(frac == 0, axis=1)
    # integer positions are placed as they are; only fractional ones need the padded shift
    m = n + 2 * p if exact.all() else padded_size(n)
    if len(positions) and (
        base.min() - p < 0 or base[:, 0].max() - p + m > w or base[:, 1].max() - p + m > h
    ):
        raise ValueError(f"patches reach outside the {h}x{w} canvas")
    # patch and window shifted together: channel 0 the weighted patch, channel 1 the window
    k = 2 if with_weight else 1
    padded = np.zeros((len(patches), k, m, m), dtype=np.complex128)
    padded[:, 0, p : p + n, p : p + n] = patches * window
    if with_weight:
        padded[:, 1, p : p + n, p : p + n] = window
    if not exact.all():
        sub = padded[~exact]
        f = frac[~exact]
        padded[~exact] = fourier_shift(sub.reshape(-1, m, m), np.repeat(f, k, axis=0)).reshape(sub.shape)
    rr = np.arange(m)
    rows = (base[:, 1] - p)[:, None, None] + rr[None, :, None]
    cols = (base[:, 0] - p)[:, None, None] + rr[None, None, :]
    flat = (rows * w + cols).reshape(len(patches), m * m)
    values = padded[:, 0].reshape(len(patches), m * m)
    weights = padded[:, 1].real.reshape(len(patches), m * m) if with_weight else None
    return flat, values, weights


def scatter_add(canvas: np.ndarray, flat: np.ndarray, values: np.ndarray) -> None:
    """``canvas.flat[flat] += values`` for repeated indices (through bincount: far faster than np.add.at)."""
    size = canvas.size
    if np.iscomplexobj(canvas):
        canvas += (np.bincount(flat.ravel(), values.real.ravel(), size)
                   + 1j * np.bincount(flat.ravel(), values.imag.ravel(), size)).reshape(canvas.shape)
    else:
        canvas += np.bincount(flat.ravel(), values.ravel(), size).reshape(canvas.shape)


def place_patches(
    canvas: np.ndarray,
    weight_canvas: np.ndarray,
    patches: np.ndarray,
    positions: np.ndarray,
    window: np.ndarray,
) -> None:
    """Accumulate ``window * patch`` and ``window`` onto the canvases in place (sub-pixel).

    ``canvas`` is complex128, ``weight_canvas`` float64, both (H, W); ``patches (B, n, n)``;
    ``positions (B, 2)`` (x, y). The stitched object is ``canvas / weight_canvas`` where the
    weight is positive. Accumulation in float64 makes the result independent of how the
    patches are split into calls to within rounding (far below 1e-5).
    """
    flat, values, weights = shifted_contributions(patches, positions, window, canvas.shape)
    scatter_add(canvas, flat, values)
    scatter_add(weight_canvas, flat, weights)
