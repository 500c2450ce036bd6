"""PtychoPINN: a convolutional encoder–decoder from a group's C diffraction amplitudes to C object
patches, trained without ground truth through the physics layers of :mod:`.physics`.

Architecture (after upstream PtychoPINN): the input amplitudes are divided by a learnable
intensity scale; an encoder of ``levels = floor(log2 N) − 3`` stages (a 3×3 ReLU convolution and
a 3×3 stride-2 convolution each, widths ``filters·2^l``) reaches an 8×8 bottleneck; one decoder
mirrors it (convolution, 2×2 stride-2 transposed convolution) and feeds two heads: amplitude
(sigmoid, in (0, 1)) and phase (π·tanh). No batch normalisation, so a group's prediction never
depends on the other groups of its batch. The output convolutions start near zero, so training
starts from an almost flat object. With ``filters = 44`` the N = 128 network has ≈4.8 M
parameters, like upstream; at N = 64, ``filters = 16`` has 0.16 M and ``filters = 8`` 0.05 M.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import keras
import numpy as np

from .physics import IntensityScale, PtychoForward, ScaledTanh

#: what the network sees of the diffraction amplitudes (:class:`.physics.IntensityScale`)
INPUTS = ("amplitude", "log")
#: standard deviation of the output convolutions' initial weights
OUTPUT_INIT_STD = 1e-3


@dataclass(frozen=True)
class NetConfig:
    """What fixes a network's shapes and physics: patch size, channels, width, canvas padding."""

    N: int
    C: int
    filters: int = 16
    pad: int = 0
    log_scale: float = 0.0
    input: str = "amplitude"  # "amplitude" (scaled) or "log" (log(1 + scaled amplitude)): IntensityScale

    def __post_init__(self):
        if self.N < 8 or self.N % 2**self.levels:
            raise ValueError(
                f"N={self.N}: the encoder–decoder needs N ≥ 8 divisible by 2^levels = {2**self.levels} "
                f"(levels = floor(log2 N) − 3)"
            )
        if self.C not in (1, 4):
            raise ValueError(f"C (gridsize²) must be 1 or 4, got {self.C}")
        if self.filters < 1:
            raise ValueError(f"model config key 'filters': expected a positive integer, got {self.filters}")
        if self.input not in INPUTS:
            raise ValueError(f"model config key 'input': expected one of {list(INPUTS)}, got {self.input!r}")

    @property
    def levels(self) -> int:
        return max(int(math.floor(math.log2(max(self.N, 2)))) - 3, 1)

    def as_dict(self) -> dict:
        return asdict(self)


def _conv(width: int, name: str, strides: int = 1):
    return keras.layers.Conv2D(width, 3, strides=strides, padding="same", activation="relu",
                               kernel_initializer="he_normal", name=name)


def encoder(x, filters: int, levels: int, prefix: str = "enc"):
    """Per level a 3×3 convolution and a 3×3 stride-2 convolution (learned downsampling); widths filters·2^l."""
    for level in range(levels):
        width = filters * 2**level
        x = _conv(width, f"{prefix}{level}_a")(x)
        x = _conv(width, f"{prefix}{level}_down", strides=2)(x)
    return x


def decoder(x, filters: int, levels: int, prefix: str = "dec"):
    """Mirror of the encoder: per level a 3×3 convolution and a 2×2 stride-2 transposed convolution."""
    for level in reversed(range(levels)):
        width = filters * 2**level
        x = _conv(width, f"{prefix}{level}_a")(x)
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, activation="relu",
                                         kernel_initializer="he_normal", name=f"{prefix}{level}_up")(x)
    return x


def _head(x, channels: int, name: str):
    # near-zero output weights: training starts from an almost flat object (amplitude ½, phase 0),
    # as an iterative reconstruction would, instead of from random phase noise (markedly faster
    # PINN convergence); not exactly zero, so that every weight gets a gradient from the start
    init = keras.initializers.RandomNormal(stddev=OUTPUT_INIT_STD)
    return keras.layers.Conv2D(channels, 3, padding="same", kernel_initializer=init, name=name)(x)


def object_heads(x, cfg: NetConfig, channels: int):
    """Amplitude (sigmoid) and phase (π·tanh) heads on a shared encoder–decoder.

    One decoder feeds both heads (each a 3×3 convolution to ``channels`` maps): on two CPU
    cores this trains ≈3× faster than two separate max-pool/upsampling decoders of the same
    widths (bench/models.md), with the full-resolution work reduced to the heads.
    """
    features = decoder(encoder(x, cfg.filters, cfg.levels), cfg.filters, cfg.levels)
    amp = keras.layers.Activation("sigmoid", name="amplitude")(_head(features, channels, "amp_out"))
    phase = ScaledTanh(math.pi, name="phase")(_head(features, channels, "phase_out"))
    return amp, phase


def build_pinn(cfg: NetConfig, probe: np.ndarray) -> keras.Model:
    """The trainable PINN: inputs ``diffraction (N, N, C)``, ``coords_relative (C, 2)``;
    outputs ``amplitude``, ``phase`` (N, N, C) and the predicted ``counts`` (N, N, C)."""
    diff = keras.Input((cfg.N, cfg.N, cfg.C), name="diffraction")
    coords = keras.Input((cfg.C, 2), name="coords_relative")
    x = IntensityScale(cfg.log_scale, cfg.input == "log", name="intensity_scale")(diff)
    amp, phase = object_heads(x, cfg, cfg.C)
    counts = PtychoForward(cfg.N, cfg.C, cfg.pad, probe=probe, name="counts")(amp, phase, coords)
    return keras.Model(
        inputs={"diffraction": diff, "coords_relative": coords},
        outputs={"amplitude": amp, "phase": phase, "counts": counts},
        name="pinn",
    )
