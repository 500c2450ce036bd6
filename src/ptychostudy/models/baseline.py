"""The supervised Baseline (PtychoNN-style): one diffraction pattern (N, N, 1) in, amplitude and
phase of its object patch out, trained with MAE against the true patches.

It shares PtychoPINN's encoder–decoder (:func:`.pinn.object_heads`) with one input and one
output channel, so the two arms differ only in what they learn from (physics vs ground truth).

Training data and loss (``ptychostudy.models.train``): every member pattern of the train
split's groups, each once per epoch, against its true patch. The MAE is weighted per pixel by
the probe intensity |P|² (``training.loss_weight: probe``, the default): a pattern says
nothing about object pixels its probe did not light, and a uniform MAE asks the network to
guess (memorise) them. The merge weights the prediction by |P|² as well (``stitch.window``).
Measured on the default data (dose 1e5, dense view, 60 epochs, bench/learning.md): train-split
phase SSIM 0.81 with the weighted loss against 0.64 uniform, test split 0.43 against 0.42.
"""

from __future__ import annotations

import keras

from .physics import IntensityScale
from .pinn import NetConfig, object_heads


def build_baseline(cfg: NetConfig) -> keras.Model:
    """Inputs ``diffraction (N, N, 1)``; outputs ``amplitude`` and ``phase`` (N, N, 1).

    ``cfg.C`` is the gridsize² of the data it is trained on (kept for checks at inference);
    the network itself sees one pattern at a time.
    """
    diff = keras.Input((cfg.N, cfg.N, 1), name="diffraction")
    x = IntensityScale(cfg.log_scale, cfg.input == "log", name="intensity_scale")(diff)
    amp, phase = object_heads(x, cfg, 1)
    return keras.Model(inputs={"diffraction": diff}, outputs={"amplitude": amp, "phase": phase}, name="baseline")
