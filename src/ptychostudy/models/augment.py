"""Exact data augmentation by the symmetries of the probe: the dihedral group of the square.

Why it is physics, not a heuristic. Let g be one of the 8 symmetries of the pixel grid about
the patch centre (pixel N/2): a transpose, then flips of the rows and of the columns. A flip
about N/2 maps index i to (N − i) mod N, so the discrete Fourier transform carries it over
unchanged (ψ(−r) ↔ Ψ(−q)); a transpose is a transpose in both spaces. When the probe is
invariant under g (``P = g(P)``: the study's probe is a circular pupil with a radial defocus,
so it has all 8), the diffraction of the patch ``g(O_j)`` is ``g(I_j)``. And ``g(O_j)`` is the
patch of the transformed object ``O∘g⁻¹`` at the transformed position, so a group whose
patterns are all transformed by g and whose member offsets (x, y) are transformed alike is a
measurement of another object. One caveat: a flip about N/2 maps the patch's first row (or
column) onto itself, so that row holds the object from the patch's far edge; the probe's
intensity there is 0.6 % of its peak at the default N = 64 (0.06 % in the study at N = 128),
and the overlap constraint sees that one row slightly inconsistent with the neighbours. The
network sees 8 objects' worth of local structure from the same photons (tests/test_augment.py
checks the identities). The Baseline's targets (amplitude, phase patches) transform the same way.

Elements are coded 0..7: bit 0 transpose, bit 1 flip rows (y → −y), bit 2 flip columns (x → −x),
applied in that order. :func:`probe_symmetries` keeps only the elements the probe really has.
"""

from __future__ import annotations

import numpy as np

#: all 8 elements of the dihedral group (bit 0 transpose, bit 1 flip y, bit 2 flip x)
DIHEDRAL = tuple(range(8))
#: augmentation modes (config key ``training.augment``)
AUGMENT_MODES = ("none", "dihedral")


def _bits(code: int) -> tuple[bool, bool, bool]:
    return bool(code & 1), bool(code & 2), bool(code & 4)


def transform_images(a: np.ndarray, code: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Element ``code`` applied to images whose grid axes are ``axes`` (rows = y, columns = x), centre N/2."""
    t, fy, fx = _bits(code)
    ay, ax = axes
    if t:
        a = np.swapaxes(a, ay, ax)
    if fy:
        a = np.roll(np.flip(a, ay), 1, ay)
    if fx:
        a = np.roll(np.flip(a, ax), 1, ax)
    return a


def transform_offsets(xy: np.ndarray, code: int) -> np.ndarray:
    """Element ``code`` applied to offsets ``(..., 2)`` given as (x, y)."""
    t, fy, fx = _bits(code)
    xy = np.asarray(xy)
    if t:
        xy = xy[..., ::-1]
    sign = np.array([-1.0 if fx else 1.0, -1.0 if fy else 1.0], dtype=xy.dtype)
    return xy * sign


def probe_symmetries(probe, rtol: float = 1e-4) -> tuple[int, ...]:
    """The elements g with ``‖g(P) − P‖ ≤ rtol·‖P‖``: those under which augmentation is exact.

    Always contains 0 (identity); they form a subgroup. Empty-probe input gives (0,).
    """
    if probe is None:
        return (0,)
    p = np.asarray(probe, np.complex128)
    norm = np.linalg.norm(p)
    if norm == 0:
        return (0,)
    return tuple(g for g in DIHEDRAL if np.linalg.norm(transform_images(p, g) - p) <= rtol * norm)


def augment_fn(kind: str, codes: tuple[int, ...]):
    """``fn(sample, r) -> sample``: element ``codes[r mod len(codes)]`` applied to one tf.data sample.

    PINN samples: ``diffraction (N, N, C)`` and ``coords_relative (C, 2)``; Baseline samples:
    ``diffraction``, ``amplitude``, ``phase`` (N, N, 1). ``r`` is a random int64 per sample.
    """
    import tensorflow as tf

    table = tf.constant(codes, tf.int64)

    def images(x, t, fy, fx):
        x = tf.cond(t, lambda: tf.transpose(x, [1, 0, 2]), lambda: x)
        x = tf.cond(fy, lambda: tf.roll(tf.reverse(x, [0]), 1, 0), lambda: x)
        return tf.cond(fx, lambda: tf.roll(tf.reverse(x, [1]), 1, 1), lambda: x)

    def fn(sample, r):
        code = tf.gather(table, tf.math.floormod(r, len(codes)))
        t, fy, fx = (tf.not_equal(tf.bitwise.bitwise_and(code, tf.constant(b, tf.int64)), 0) for b in (1, 2, 4))
        out = {k: images(v, t, fy, fx) for k, v in sample.items() if k != "coords_relative"}
        if kind == "pinn":
            xy = sample["coords_relative"]
            xy = tf.cond(t, lambda: tf.reverse(xy, [1]), lambda: xy)
            sign = tf.stack([tf.where(fx, -1.0, 1.0), tf.where(fy, -1.0, 1.0)])
            out["coords_relative"] = xy * tf.cast(sign, xy.dtype)
        return out

    return fn
