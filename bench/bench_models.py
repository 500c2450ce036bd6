"""Speed of PtychoPINN and the Baseline on this machine: training step, inference, parameters.

    .venv/bin/python bench/bench_models.py            # writes bench/models.md (about 4 minutes)
    .venv/bin/python bench/bench_models.py --quality  # adds a short training run on simulated data

For N = 64 (the default study) and N = 128 (the full design), gridsize 2 (C = 4), batch 16:
the median wall time of one training step (forward, loss, backward, Adam) over a batch of 16
groups (PINN, Poisson NLL through the physics layers) or 16 patterns (Baseline, MAE), and
inference throughput in patterns per second with ``ptychostudy.models.infer.Predictor``
(batch 64 inputs). Data are random amplitudes with realistic group offsets; the numbers do
not depend on the values. TensorFlow uses all cores (``nproc``); other processes on a shared
machine slow it down, so the load average is recorded with the numbers.

``--quality`` simulates the default study's geometry at 1e5 photons (N = 64, C = 4, 300
train groups on one object, 64 test groups on another), trains both models with the
recommended settings and reports the phase correlation of predicted and true patches inside
the probe (per-patch global phase removed), the number that says whether the PINN learns.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

THREADS = os.cpu_count() or 1
from ptychostudy.runtime import configure_tensorflow  # noqa: E402

tf = configure_tensorflow(THREADS)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import machine  # noqa: E402
from steps import step_time  # noqa: E402

from ptychostudy.models.baseline import build_baseline  # noqa: E402
from ptychostudy.models.infer import Predictor  # noqa: E402
from ptychostudy.models.physics import canvas_pad  # noqa: E402
from ptychostudy.models.pinn import NetConfig, build_pinn  # noqa: E402

BATCH = 16
#: (N, filters) measured: the laptop-sized study at two widths, and N=128 like upstream PtychoPINN (≈4.8 M parameters)
CASES = ((64, 8), (64, 16), (128, 44))
#: streamed training (make_dataset from chunk files, as the train rules run): groups and epochs
STREAM_GROUPS, STREAM_EPOCHS = 512, 4
#: width used by --quality (N=64)
QUALITY_FILTERS = 16
#: recommended training settings (also used by --quality)
RECOMMENDED = {"epochs": 30, "batch_size": 16, "learning_rate": 1e-3, "patience": 5, "seed": 7}


def _infer_rate(model, n: int, c: int, n_inputs: int) -> float:
    pred = Predictor(model, batch_size=64)
    x = np.random.default_rng(0).random((n_inputs, n, n, c), dtype=np.float32)
    rel = np.zeros((n_inputs, c, 2), np.float32)  # the PINN's constrained export; its cost ignores the values
    pred(x[:64], rel[:64])  # trace
    t0 = time.perf_counter()
    pred(x, rel)
    wall = time.perf_counter() - t0
    return n_inputs * 4 / wall  # patterns per second (4 per group, or 4 per stacked baseline input)


def speed_rows() -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for n, f in CASES:
        rel = rng.uniform(-0.3 * n, 0.3 * n, (BATCH, 4, 2))
        rel -= rel.mean(axis=1, keepdims=True)
        probe = np.ones((n, n), np.complex64) * 10
        pinn = build_pinn(NetConfig(n, 4, f, pad=canvas_pad(np.abs(rel).max(), n), log_scale=1.0), probe)
        base = build_baseline(NetConfig(n, 4, f, log_scale=1.0))
        reps = 5 if n == 64 else 3
        b_pinn = {"diffraction": tf.constant(rng.random((BATCH, n, n, 4), dtype=np.float32) * 5),
                  "coords_relative": tf.constant(rel, tf.float32)}
        b_base = {k: tf.constant(rng.random((BATCH, n, n, 1), dtype=np.float32)) for k in ("diffraction", "amplitude", "phase")}
        n_inf = 256 if n == 64 else 32
        for kind, model, batch in (("pinn", pinn, b_pinn), ("baseline", base, b_base)):
            t = step_time(model, kind, batch, reps)
            # the Baseline predicts each of a group's 4 patterns: n_inf groups = 4·n_inf inputs of one channel
            rate = _infer_rate(model, n, 4 if kind == "pinn" else 1, n_inf if kind == "pinn" else 4 * n_inf)
            if kind == "baseline":
                rate /= 4
            rows.append({"N": n, "model": kind, "filters": f, "params": model.count_params(), "step_s": t,
                         "samples_per_s": BATCH / t, "infer_patterns_per_s": rate})
            print(rows[-1], flush=True)
    return rows


def stream_rows() -> list[dict]:
    """Training throughput as the workflow trains: chunk files streamed by make_dataset, batch 16.

    Epochs after the first (which traces the step function) are timed; groups per second for
    the PINN, patterns per second for the Baseline (each unique member pattern once per epoch).
    """
    import pandas as pd

    from ptychostudy.io import save_npz
    from ptychostudy.models.data import make_synthetic_chunks
    from ptychostudy.models.train import train_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        chunks = make_synthetic_chunks(n=64, gridsize=2, n_groups=STREAM_GROUPS, chunk_size=64, dose=1e4,
                                       step=8.0, seed=3)
        paths = []
        for i, c in enumerate(chunks):
            paths.append(tmp / f"chunk_{i:04d}.npz")
            save_npz(paths[-1], **c)
        for kind in ("pinn", "baseline"):
            for f in (8, 16):
                out = tmp / f"{kind}{f}"
                settings = dict(RECOMMENDED, epochs=STREAM_EPOCHS, patience=0)
                train_model(kind, paths, settings, {"filters": f}, out / "model.keras", out / "history.csv",
                            out / "loss.png")
                hist = pd.read_csv(out / "history.csv")
                later = hist.iloc[1:]
                rows.append({"model": kind, "filters": f, "samples": int(hist.n_samples.iloc[0]),
                             "epoch_s": float(later.time_s.median()),
                             "per_s": float(hist.n_samples.iloc[0] / later.time_s.median())})
                print(rows[-1], flush=True)
    return rows


def quality_rows(epochs: int) -> list[dict]:
    """Train both models on simulated 1e5-photon data; phase correlation of patches in the probe."""
    from ptychostudy.io import save_npz
    from ptychostudy.models.data import make_synthetic_chunks
    from ptychostudy.models.infer import predict_chunk
    from ptychostudy.models.train import train_model

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = make_synthetic_chunks(n=64, gridsize=2, n_groups=300, chunk_size=64, dose=1e5, step=11.0, seed=1)
        test = make_synthetic_chunks(n=64, gridsize=2, n_groups=64, chunk_size=64, dose=1e5, step=11.0, seed=7)[0]
        paths = []
        for i, c in enumerate(train):
            paths.append(tmp / f"chunk_{i:04d}.npz")
            save_npz(paths[-1], **c)
        for kind in ("pinn", "baseline"):
            out = tmp / kind
            res = train_model(kind, paths, dict(RECOMMENDED, epochs=epochs), {"filters": QUALITY_FILTERS}, out / "model.keras",
                              out / "history.csv", out / "loss.png")
            model = keras.models.load_model(out / "model.keras")
            for split, c in (("train", train[0]), ("test", test)):
                rows.append({"model": kind, "split": split, "epochs": res["epochs_run"],
                             "train_s": res["wall_time_s"], **patch_scores(predict_chunk(model, c), c)})
                print(rows[-1], flush=True)
    return rows


def patch_scores(pred: np.ndarray, chunk: dict) -> dict:
    """Mean per-patch correlations of phase and amplitude inside the probe (|P|² > 10 % of max)."""
    true = chunk["patches"]
    w = np.abs(chunk["probeGuess"]) ** 2
    mask = w > 0.1 * w.max()
    phase_c, amp_c = [], []
    for b in range(true.shape[0]):
        for k in range(true.shape[3]):
            p, t = pred[b, ..., k][mask], true[b, ..., k][mask]
            offset = np.angle(np.sum(p * np.conj(t)))
            with np.errstate(invalid="ignore", divide="ignore"):  # a flat prediction has no correlation
                phase_c.append(np.corrcoef(np.angle(p * np.exp(-1j * offset)), np.angle(t))[0, 1])
                amp_c.append(np.corrcoef(np.abs(p), np.abs(t))[0, 1])
    return {"phase_corr": float(np.nanmean(phase_c)), "amp_corr": float(np.nanmean(amp_c))}


def write_report(speed: list[dict], stream: list[dict], quality: list[dict]) -> Path:
    lines = [
        "# Model benchmark (Phase E)",
        "",
        f"Machine: {machine()}; TensorFlow {tf.__version__} on the CPU with {THREADS} threads; "
        f"load average at the end {os.getloadavg()[0]:.1f}.",
        "Generated by `.venv/bin/python bench/bench_models.py" + (" --quality" if quality else "") + "`.",
        "",
        f"Training step: one forward + backward + Adam update on a batch of {BATCH} groups (PINN, C=4, Poisson NLL",
        "through merge/re-extract, probe, FFT) or 16 patterns (Baseline, MAE); median wall time.",
        "Inference: patterns per second of `Predictor` (batch 64), the Baseline predicting each member alone.",
        "",
        "| N | model | filters | parameters | train step (s, batch 16) | train samples/s | inference patterns/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed:
        lines.append(f"| {r['N']} | {r['model']} | {r['filters']} | {r['params']:,} | {r['step_s']:.3f} | "
                     f"{r['samples_per_s']:.0f} | {r['infer_patterns_per_s']:.0f} |")
    if stream:
        lines += ["", f"## Training streamed from chunk files (N=64, C=4, {STREAM_GROUPS} groups in chunks of 64, batch 16)", "",
                  "As the `train_pinn`/`train_baseline` jobs train: `make_dataset` streams the chunk files (chunk order and",
                  "samples shuffled, shuffle buffer 256, prefetch); median epoch time after the first (tracing) epoch.",
                  "The PINN's samples are groups; the Baseline's are the split's unique member patterns.", "",
                  "| model | filters | samples per epoch | epoch (s) | samples/s |", "|---|---|---|---|---|"]
        for r in stream:
            lines.append(f"| {r['model']} | {r['filters']} | {r['samples']} | {r['epoch_s']:.2f} | {r['per_s']:.0f} |")
    if quality:
        lines += ["", "## Learning on simulated data (1e5 photons, N=64, C=4, 300 train groups)", "",
                  f"Settings: {RECOMMENDED} (epochs as in the table), filters {QUALITY_FILTERS}. Correlation of predicted and true patches",
                  "inside the probe (|P|² > 10 % of its maximum), per-patch global phase removed; mean over patches.", "",
                  "| model | split | epochs | training (s) | phase corr | amplitude corr |", "|---|---|---|---|---|---|"]
        for r in quality:
            lines.append(f"| {r['model']} | {r['split']} | {r['epochs']} | {r['train_s']:.0f} | "
                         f"{r['phase_corr']:.3f} | {r['amp_corr']:.3f} |")
    path = ROOT / "bench" / "models.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true", help="also train on simulated data (several minutes)")
    ap.add_argument("--epochs", type=int, default=RECOMMENDED["epochs"], help="epochs of the --quality training")
    ap.add_argument("--skip-speed", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    speed = [] if args.skip_speed else speed_rows()
    stream = [] if args.skip_speed else stream_rows()
    quality = quality_rows(args.epochs) if args.quality else []
    print(f"wrote {write_report(speed, stream, quality)}")


if __name__ == "__main__":
    main()
