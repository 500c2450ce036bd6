"""PtychoPINN's differentiable forward model in TensorFlow, and its Keras layers.

The TensorFlow adapter of :mod:`ptychostudy.conventions` (tests/test_conventions.py checks it
against the numpy reference): a patch of size N is centred on its scan position; a member c of
a group sits at ``centre + coords_relative[c]`` (x, y, object pixels); expected counts are
``|fftshift(fft2(P · O))|² / N²`` with the dose-scaled probe P; the loss is the conventions'
Poisson negative log-likelihood, averaged.

The gridsize > 1 overlap constraint is applied **per group**, never across a batch: each group's
C patches are blended onto the group's own zero-padded canvas (side N + 2·pad, centred on the
group centre) with Fourier phase-ramp shifts, and each member's patch is cut back out. The
blend is a weighted average with a smooth window; numerator and weight canvases are
re-extracted separately and divided in the member's own frame, so integer offsets reproduce
consistent patches exactly and regions seen by one member only come back unchanged.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from ..conventions import POISSON_EPS

#: floor of the blending window at the patch border (keeps the weighted average well defined)
WINDOW_FLOOR = 0.05
#: smallest weight the blended average divides by
WEIGHT_MIN = 1e-3
#: pixels added to the largest offset when sizing the canvas (room for sub-pixel ringing)
PAD_MARGIN = 2


def blend_window(n: int, taper: int | None = None, floor: float = WINDOW_FLOOR) -> np.ndarray:
    """Smooth (N, N) float32 weight: 1 in the interior, a sin² taper down to ``floor`` over ``taper`` pixels."""
    taper = max(n // 8, 1) if taper is None else int(taper)
    w = np.ones(n)
    ramp = np.sin(0.5 * np.pi * (np.arange(taper) + 0.5) / taper) ** 2
    w[:taper] = ramp
    w[n - taper :] = ramp[::-1]
    w = floor + (1.0 - floor) * w
    return np.outer(w, w).astype(np.float32)


def fft_size(m: int) -> int:
    """Smallest even 5-smooth integer (2^a·3^b·5^c) ≥ m: sizes the FFT libraries transform fastest."""
    m = max(int(m), 2)
    while True:
        k = m
        for f in (2, 3, 5):
            while k % f == 0:
                k //= f
        if k == 1 and m % 2 == 0:
            return m
        m += 1


def canvas_pad(max_offset: float, n: int) -> int:
    """Canvas padding (pixels per side) that holds a member ``max_offset`` pixels from its group centre.

    The canvas side N + 2·pad is rounded up to an even 5-smooth size (:func:`fft_size`): a
    sparse-view canvas of 152 = 8·19 pixels transforms 1.35× slower than one of 160 = 32·5.
    """
    pad = int(math.ceil(max(float(max_offset), 0.0))) + PAD_MARGIN
    # N is even (NetConfig), so the even side leaves the same padding on both sides
    return (fft_size(n + 2 * pad) - n) // 2


def _ramp_1d(shift: tf.Tensor, m: int) -> tf.Tensor:
    """exp(-2πi f s) on the fftfreq grid of length m for shifts ``shift (...)``: (..., m) complex64.

    The argument is formed in float64 so large integer shifts stay exact to float32 precision.
    """
    f = tf.constant(np.fft.fftfreq(m), dtype=tf.float64)
    arg = -2.0 * np.pi * tf.cast(shift, tf.float64)[..., None] * f
    return tf.cast(tf.complex(tf.cos(arg), tf.sin(arg)), tf.complex64)


def shift_ramp(shift_xy: tf.Tensor, m: int) -> tf.Tensor:
    """Phase ramp (..., m, m) that shifts an m×m image by ``shift_xy (..., 2)`` (x, y) pixels.

    Multiplying a spectrum by it moves content towards larger indices for a positive shift
    (the convention of ``ptychostudy.conventions.fourier_shift``).
    """
    rx = _ramp_1d(shift_xy[..., 0], m)
    ry = _ramp_1d(shift_xy[..., 1], m)
    return ry[..., :, None] * rx[..., None, :]


def merge_extract(patches: tf.Tensor, offsets: tf.Tensor, window: tf.Tensor, pad: int) -> tf.Tensor:
    """Blend each group's C patches at their offsets and re-extract every member: (B, C, N, N) complex64.

    ``patches (B, C, N, N)`` complex64, ``offsets (B, C, 2)`` (x, y) member − centre, ``window (N, N)``.
    Every group has its own canvas: the output of a group never depends on the rest of the batch.
    """
    n = patches.shape[-1]
    m = n + 2 * pad
    paddings = [[0, 0], [0, 0], [pad, pad], [pad, pad]]
    wc = tf.cast(window, tf.complex64)
    spec = tf.signal.fft2d(tf.pad(patches * wc, paddings))  # (B, C, M, M)
    ramp = shift_ramp(tf.cast(offsets, tf.float32), m)  # member frame -> group canvas
    canvas = tf.reduce_sum(spec * ramp, axis=1, keepdims=True)  # (B, 1, M, M) spectrum
    wspec = tf.signal.fft2d(tf.pad(wc, [[pad, pad], [pad, pad]]))
    wcanvas = tf.reduce_sum(wspec * ramp, axis=1, keepdims=True)
    back = tf.math.conj(ramp)  # group canvas -> member frame (shift by −offset)
    num = tf.signal.ifft2d(canvas * back)[:, :, pad : pad + n, pad : pad + n]
    den = tf.math.real(tf.signal.ifft2d(wcanvas * back))[:, :, pad : pad + n, pad : pad + n]
    return num / tf.cast(tf.maximum(den, WEIGHT_MIN), tf.complex64)


def far_field_counts(probe: tf.Tensor, obj: tf.Tensor) -> tf.Tensor:
    """Expected counts ``|fftshift(fft2(P · O))|² / N²`` (…, N, N) float32, as ``conventions.expected_counts``."""
    n = obj.shape[-1]
    far = tf.signal.fftshift(tf.signal.fft2d(probe * obj), axes=(-2, -1))
    return (tf.math.real(far) ** 2 + tf.math.imag(far) ** 2) / float(n * n)


def poisson_nll(counts_pred: tf.Tensor, counts_meas: tf.Tensor, eps: float = POISSON_EPS) -> tf.Tensor:
    """The mean of ``conventions.poisson_nll``: mean(λ − k·log(λ + eps)) (constant log k! dropped)."""
    return tf.reduce_mean(counts_pred - counts_meas * tf.math.log(counts_pred + eps))


# ---- Keras layers (registered so that keras.models.load_model needs no custom_objects) ----------


@keras.saving.register_keras_serializable(package="ptychostudy")
class IntensityScale(keras.layers.Layer):
    """Divides diffraction amplitudes by a learnable scale exp(log_scale) (a trainable scalar);
    with ``compress`` then takes log(1 + ·), so that the weak high-angle pixels, which hold the
    fine structure, are not drowned by the bright central disc (a dynamic range of ~100 in
    amplitude at dose 1e5)."""

    def __init__(self, log_scale: float = 0.0, compress: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.log_scale_init = float(log_scale)
        self.compress = bool(compress)

    def build(self, input_shape):
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(self.log_scale_init),
            trainable=True,
        )

    def call(self, x):
        y = x * keras.ops.exp(-self.log_scale)
        return keras.ops.log1p(y) if self.compress else y

    def get_config(self):
        return {**super().get_config(), "log_scale": self.log_scale_init, "compress": self.compress}


@keras.saving.register_keras_serializable(package="ptychostudy")
class ScaledTanh(keras.layers.Layer):
    """``scale · tanh(x)``: the phase head's activation (scale = π)."""

    def __init__(self, scale: float = math.pi, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, x):
        return self.scale * keras.ops.tanh(x)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="ptychostudy")
class PtychoForward(keras.layers.Layer):
    """Amplitude, phase (B, N, N, C) and coords_relative (B, C, 2) → predicted counts (B, N, N, C).

    For C > 1 the group's patches are merged and re-extracted (:func:`merge_extract`) on a canvas
    padded by ``pad``; then the known, dose-scaled probe multiplies each patch and the far-field
    counts follow Phase C. The probe is a non-trainable weight, saved with the model; ``pad``
    (from the training chunks' largest offset) is part of the layer config.
    """

    def __init__(self, n: int, channels: int, pad: int, probe=None, taper: int | None = None,
                 window_floor: float = WINDOW_FLOOR, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)
        self.channels = int(channels)
        self.pad = int(pad)
        self.taper = max(self.n // 8, 1) if taper is None else int(taper)
        self.window_floor = float(window_floor)
        self._probe_init = None if probe is None else np.asarray(probe, dtype=np.complex64)
        if self._probe_init is not None and self._probe_init.shape != (self.n, self.n):
            raise ValueError(f"probe has shape {self._probe_init.shape}, expected ({self.n}, {self.n})")

    def build(self, input_shape):
        init = self._probe_init if self._probe_init is not None else np.zeros((self.n, self.n), np.complex64)
        self.probe_real = self.add_weight(
            name="probe_real", shape=(self.n, self.n),
            initializer=keras.initializers.Constant(init.real.astype(np.float32)), trainable=False)
        self.probe_imag = self.add_weight(
            name="probe_imag", shape=(self.n, self.n),
            initializer=keras.initializers.Constant(init.imag.astype(np.float32)), trainable=False)

    def object_patches(self, amplitude, phase, coords_relative):
        """Member patches (B, C, N, N) complex64 after the overlap constraint (identity for C = 1)."""
        amp = tf.transpose(tf.cast(amplitude, tf.float32), [0, 3, 1, 2])
        ph = tf.transpose(tf.cast(phase, tf.float32), [0, 3, 1, 2])
        obj = tf.complex(amp * tf.cos(ph), amp * tf.sin(ph))
        if self.channels > 1:
            window = tf.constant(blend_window(self.n, self.taper, self.window_floor))
            obj = merge_extract(obj, coords_relative, window, self.pad)
        return obj

    def call(self, amplitude, phase, coords_relative):
        obj = self.object_patches(amplitude, phase, coords_relative)
        probe = tf.complex(tf.convert_to_tensor(self.probe_real), tf.convert_to_tensor(self.probe_imag))
        counts = far_field_counts(probe, obj)  # (B, C, N, N)
        return tf.transpose(counts, [0, 2, 3, 1])

    def compute_output_shape(self, amplitude_shape, phase_shape=None, coords_relative_shape=None):
        return amplitude_shape

    def get_config(self):
        return {
            **super().get_config(),
            "n": self.n,
            "channels": self.channels,
            "pad": self.pad,
            "taper": self.taper,
            "window_floor": self.window_floor,
        }
