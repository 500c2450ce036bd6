"""Where a PINN training step's time goes on the CPU, and whether XLA compilation helps.

    .venv/bin/python bench/bench_step.py    # writes bench/step.md (about 3 minutes)

1. Median wall time of one training step (forward, Poisson loss, backward, Adam) at N = 64,
   C = 4, batch 16, one thread: the default network (filters 16), filters 8, and filters 16
   with the overlap constraint (``merge_extract``) replaced by the identity, which isolates
   the cost of the group canvases.
2. Epoch time of the real streamed training (``train_model`` on synthetic chunks of 256
   groups at N = 64, batch 16, one thread) with ``training.jit_compile`` off and on.
The load average is recorded: on a shared 2-core machine other processes slow both alike.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ptychostudy.runtime import configure_tensorflow  # noqa: E402

tf = configure_tensorflow(1)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import machine  # noqa: E402
from steps import step_time  # noqa: E402

from ptychostudy.io import save_npz  # noqa: E402
from ptychostudy.models import physics  # noqa: E402
from ptychostudy.models.data import make_synthetic_chunks  # noqa: E402
from ptychostudy.models.pinn import NetConfig, build_pinn  # noqa: E402
from ptychostudy.models.train import train_model  # noqa: E402

N, B = 64, 16


def step_ms(filters: int) -> float:
    rng = np.random.default_rng(0)
    rel = rng.uniform(-9, 9, (B, 4, 2))
    rel -= rel.mean(1, keepdims=True)
    batch = {"diffraction": tf.constant(rng.random((B, N, N, 4), dtype=np.float32) * 5),
             "coords_relative": tf.constant(rel, tf.float32)}
    model = build_pinn(NetConfig(N, 4, filters, pad=18, log_scale=1.0), np.ones((N, N), np.complex64))
    return 1000 * step_time(model, "pinn", batch, 15)


def epoch_s(jit: bool, paths: list, work: Path) -> float:
    training = {"epochs": 6, "batch_size": B, "learning_rate": 1e-3, "patience": 0, "seed": 7, "jit_compile": jit}
    train_model("pinn", paths, training, {"filters": 16}, work / f"m{jit}.keras", work / f"h{jit}.csv",
                work / f"c{jit}.png")
    return float(pd.read_csv(work / f"h{jit}.csv")["time_s"][1:].median())


def main() -> None:
    load = os.getloadavg()[0]
    rows = [("filters 16 (default)", step_ms(16)), ("filters 8", step_ms(8))]
    original = physics.merge_extract
    physics.merge_extract = lambda patches, offsets, window, pad: patches
    try:
        rows.append(("filters 16, overlap constraint removed", step_ms(16)))
    finally:
        physics.merge_extract = original
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = []
        for c in make_synthetic_chunks(n=N, gridsize=2, n_groups=256, chunk_size=128, dose=1e5, step=7.0, seed=3):
            paths.append(str(work / f"chunk_{int(c['chunk']):04d}.npz"))
            save_npz(paths[-1], **c)
        xla = [("XLA off", epoch_s(False, paths, work)), ("XLA on", epoch_s(True, paths, work))]
    lines = ["# PINN training step on the CPU", "", f"Machine: {machine()}; load average at start {load:.2f}.",
             "Command: `.venv/bin/python bench/bench_step.py`.", "",
             f"## One step, N = {N}, C = 4, batch {B}, one thread", "", "| network | ms per step |", "|---|---:|"]
    lines += [f"| {name} | {ms:.0f} |" for name, ms in rows]
    lines += ["", "## Streamed training, 256 groups, batch 16, one thread (median epoch after the first)", "",
              "| step compilation | s per epoch |", "|---|---:|"]
    lines += [f"| {name} | {s:.2f} |" for name, s in xla]
    (ROOT / "bench" / "step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
