"""The timed training step shared by the model benchmarks (bench_models.py, bench_step.py).

Import it after the caller has configured TensorFlow's threads (ptychostudy.runtime).
"""

from __future__ import annotations

import time

import numpy as np


def step_time(model, kind: str, batch: dict, repeats: int) -> float:
    """Median wall time (s) of one training step: forward, loss, backward, Adam."""
    import keras
    import tensorflow as tf

    from ptychostudy.models.train import make_loss

    loss_fn = make_loss(kind, model)
    opt = keras.optimizers.Adam(1e-3)
    variables = model.trainable_variables

    @tf.function
    def step(b):
        with tf.GradientTape() as tape:
            loss, _ = loss_fn(b, True)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step(batch)  # trace
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        float(step(batch))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
