"""Training of PtychoPINN and the Baseline from a split's chunk files (streamed, never all in memory).

No validation split is held out: the train split is what an experiment has, the test split is
the evaluation, and the PINN's loss needs no ground truth. Early stopping therefore monitors the
epoch's mean training loss (stop after ``patience`` epochs without improvement; the best epoch's
weights are restored). Outputs: ``model.keras`` (loads with ``keras.models.load_model``, no
training state), ``history.csv`` (one row per epoch: the loss, and where the chunks hold true
patches the reference losses of the ground truth and of a flat object with the fraction of that
gap the model has closed, :func:`reference_losses`) and a loss-curve PNG, all written atomically.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..config import ConfigError
from ..io import atomic_path, save_csv, save_figure
from .augment import AUGMENT_MODES, probe_symmetries
from .data import check_kind, make_dataset, read_chunk_keys, scan_chunks
from .physics import canvas_pad, poisson_nll
from .pinn import NetConfig

log = logging.getLogger("ptychostudy.models")


#: per-pixel weights of the Baseline's MAE (see :func:`pixel_weight`)
LOSS_WEIGHTS = ("probe", "uniform")


def pixel_weight(kind: str, probe, n: int) -> np.ndarray:
    """(N, N) float32 weight of the Baseline's per-pixel MAE, mean 1.

    ``"probe"``: the probe intensity |P|². A diffraction pattern carries information about the
    object only where the probe lit it; asking the network to predict the true patch where no
    photon reached forces it to guess (memorise) the object there, which the stitch then
    down-weights anyway. ``"uniform"``: every pixel alike (PtychoNN's loss).
    """
    if kind == "uniform" or probe is None:
        return np.ones((n, n), np.float32)
    w = np.abs(np.asarray(probe, np.complex128)) ** 2
    return (w / w.mean()).astype(np.float32)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings (config keys of the same names)."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    shuffle_buffer: int = 256  # samples; bounds the cross-chunk shuffle memory
    min_delta: float = 0.0  # loss improvement (absolute) that resets the patience counter
    jit_compile: bool = False  # compile the training step with XLA (bench/step.md: no gain on the CPU)
    loss_weight: str = "probe"  # Baseline only: per-pixel MAE weight, "probe" (|P|²) or "uniform"
    augment: str = "none"  # "dihedral": each sample transformed by a random symmetry of the probe (models/augment.py)

    @classmethod
    def from_dict(cls, d: dict, where: str = "training") -> TrainingConfig:
        names = {f.name for f in fields(cls)}
        required = {"epochs", "batch_size", "learning_rate", "patience", "seed"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"config key '{where}.{unknown[0]}': unknown; expected keys among {sorted(names)}")
        missing = sorted(required - set(d))
        if missing:
            raise ConfigError(f"config key '{where}.{missing[0]}': missing; required keys {sorted(required)}")
        cfg = cls(**{k: d[k] for k in d})
        for key, ok, expected in (
            ("epochs", isinstance(cfg.epochs, int) and cfg.epochs >= 1, "an integer ≥ 1"),
            ("batch_size", isinstance(cfg.batch_size, int) and cfg.batch_size >= 1, "an integer ≥ 1"),
            ("learning_rate", isinstance(cfg.learning_rate, (int, float)) and cfg.learning_rate > 0, "a positive number"),
            ("patience", isinstance(cfg.patience, int) and cfg.patience >= 0, "an integer ≥ 0 (0: no early stopping)"),
            ("seed", isinstance(cfg.seed, int), "an integer"),
            ("shuffle_buffer", isinstance(cfg.shuffle_buffer, int) and cfg.shuffle_buffer >= 0, "an integer ≥ 0"),
            ("min_delta", isinstance(cfg.min_delta, (int, float)) and cfg.min_delta >= 0, "a number ≥ 0"),
            ("jit_compile", isinstance(cfg.jit_compile, bool), "true or false"),
            ("loss_weight", cfg.loss_weight in LOSS_WEIGHTS, f"one of {list(LOSS_WEIGHTS)}"),
            ("augment", cfg.augment in AUGMENT_MODES, f"one of {list(AUGMENT_MODES)}"),
        ):
            if not ok:
                raise ConfigError(f"config key '{where}.{key}': expected {expected}, got {getattr(cfg, key)!r}")
        return cfg


def model_config(kind: str, summary, model_cfg: dict) -> NetConfig:
    """Network config from the data (N, C, canvas pad, initial intensity scale) and the user's keys."""
    allowed = {"filters"}
    unknown = sorted(set(model_cfg) - allowed)
    if unknown:
        raise ConfigError(f"config key 'model.{unknown[0]}': unknown; expected keys among {sorted(allowed)}")
    filters = model_cfg.get("filters", 16)
    if not isinstance(filters, int) or filters < 1:
        raise ConfigError(f"config key 'model.filters': expected a positive integer, got {filters!r}")
    # Normalised amplitudes get unit RMS per pixel: s = sqrt(mean Σ counts) / N.
    log_scale = 0.5 * math.log(max(summary.mean_total_counts, 1e-12)) - math.log(summary.N)
    pad = canvas_pad(summary.max_offset, summary.N) if (kind == "pinn" and summary.C > 1) else 0
    return NetConfig(N=summary.N, C=summary.C, filters=filters, pad=pad, log_scale=log_scale)


def build_model(kind: str, net: NetConfig, probe=None):
    from .baseline import build_baseline
    from .pinn import build_pinn

    return build_pinn(net, probe) if kind == "pinn" else build_baseline(net)


def make_loss(kind: str, model, weight: np.ndarray | None = None):
    """``loss_fn(batch, training) -> (loss, metrics dict)`` for the model kind.

    ``weight (N, N)``: the Baseline's per-pixel MAE weight (mean 1; :func:`pixel_weight`).
    """
    import tensorflow as tf

    if kind == "pinn":

        def loss_fn(batch, training):
            diff = batch["diffraction"]
            out = model({"diffraction": diff, "coords_relative": batch["coords_relative"]}, training=training)
            return poisson_nll(out["counts"], tf.square(diff)), {}

    else:

        w = tf.constant(np.ones((1, 1)) if weight is None else weight[:, :, None], tf.float32)

        def loss_fn(batch, training):
            out = model({"diffraction": batch["diffraction"]}, training=training)
            mae_a = tf.reduce_mean(w * tf.abs(out["amplitude"] - batch["amplitude"]))
            mae_p = tf.reduce_mean(w * tf.abs(out["phase"] - batch["phase"]))
            return mae_a + mae_p, {"mae_amplitude": mae_a, "mae_phase": mae_p}

    return loss_fn


def reference_losses(paths: list, kind: str, weight: np.ndarray | None = None) -> dict:
    """The two ends of the scale the training loss moves on, on the same training data.

    ``loss_truth``: the loss of the ground-truth patches (PINN: their Poisson NLL through the
    forward model, the floor a converged model approaches; Baseline: 0). ``loss_flat``: the loss
    of the best flat object (PINN: a constant amplitude that matches the mean total counts, zero
    phase; Baseline: the mean true amplitude, zero phase, with the MAE's pixel ``weight``). A
    diagnostic only: the truth never enters training. Empty when the chunks hold no true
    ``patches``.
    """
    from ..simulate import expected_counts
    from .physics import POISSON_EPS

    if not all(_has_truth(p) for p in paths):
        return {}
    sums = {"truth": 0.0, "flat": 0.0}
    count = 0
    if kind == "pinn":
        # flat amplitude a with a²·Σ|P|² = mean measured total counts (Parseval)
        totals, probe2 = [], None
        for path in paths:
            d = read_chunk_keys(path, ("diffraction", "probeGuess"))
            totals.append(np.sum(d["diffraction"].astype(np.float64) ** 2, axis=(1, 2)).ravel())
            probe2 = np.abs(d["probeGuess"].astype(np.complex128)) ** 2
        a2 = float(np.mean(np.concatenate(totals))) / float(probe2.sum())
        flat = None  # the flat object's counts, the same for every pattern

        def nll(lam, k):
            return float(np.sum(lam - k * np.log(lam + POISSON_EPS)))

        for path in paths:
            d = read_chunk_keys(path, ("diffraction", "patches", "probeGuess"))
            n = d["diffraction"].shape[1]
            k = np.moveaxis(d["diffraction"].astype(np.float64) ** 2, 3, 1).reshape(-1, n, n)  # (B·C, N, N)
            probe = d["probeGuess"]
            if flat is None:
                flat = a2 * expected_counts(probe, np.ones((1, n, n)))
            sums["truth"] += nll(expected_counts(probe, np.moveaxis(d["patches"], 3, 1).reshape(-1, n, n)), k)
            sums["flat"] += nll(np.broadcast_to(flat, k.shape), k)
            count += k.size
    else:
        # two passes, one chunk in memory at a time: the mean true amplitude, then the MAE
        amp_sum = 0.0
        for path in paths:
            amp = np.abs(read_chunk_keys(path, ("patches",))["patches"])
            amp_sum, count = amp_sum + float(amp.sum()), count + amp.size
        level = amp_sum / count
        w = 1.0 if weight is None else np.asarray(weight, np.float64)[None, :, :, None]
        for path in paths:
            patches = read_chunk_keys(path, ("patches",))["patches"]
            sums["flat"] += float(np.sum(w * np.abs(np.abs(patches) - level)) + np.sum(w * np.abs(np.angle(patches))))
    return {"loss_truth": sums["truth"] / count, "loss_flat": sums["flat"] / count}


def _has_truth(path) -> bool:
    with np.load(path, allow_pickle=False) as z:
        return "patches" in z.files


def gap_closed(loss: float, ref: dict) -> float:
    """Fraction of the way from the flat object's loss to the truth's that ``loss`` has come."""
    if not ref or ref["loss_flat"] == ref["loss_truth"]:
        return float("nan")
    return (ref["loss_flat"] - loss) / (ref["loss_flat"] - ref["loss_truth"])


def augmentation(mode: str, probe) -> tuple[int, ...]:
    """The symmetry elements training draws from (:mod:`.augment`): ``(0,)`` for ``"none"``; for
    ``"dihedral"`` those of the 8 the probe really has (a warning when it has none but the identity)."""
    if mode == "none":
        return (0,)
    codes = probe_symmetries(probe)
    if len(codes) == 1:
        log.warning("training.augment: dihedral, but the probe has no symmetry of the square; no augmentation")
    else:
        log.info("augmentation: %d symmetries of the probe %s", len(codes), codes)
    return codes


def fit(model, dataset, loss_fn, cfg: TrainingConfig, log_scale_of=None, on_epoch_end=None) -> list[dict]:
    """Adam on the streamed batches with early stopping on the epoch loss; restores the best weights.

    Returns the history, one dict per epoch (epoch, loss, metrics, log_scale, n_samples, time_s).
    ``on_epoch_end(row)`` may add entries to an epoch's row (e.g. an evaluation).
    """
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate)
    variables = model.trainable_variables

    # one trace for every batch size (the last batch of an epoch is usually smaller)
    @tf.function(input_signature=[dataset.element_spec], jit_compile=cfg.jit_compile)
    def train_step(batch):
        with tf.GradientTape() as tape:
            loss, metrics = loss_fn(batch, True)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, metrics

    history, best, best_weights, wait = [], math.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        sums, count = {}, 0
        for batch in dataset:
            loss, metrics = train_step(batch)
            b = int(batch["diffraction"].shape[0])
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            count += b
        if count == 0:
            raise ValueError("the training chunks hold no samples")
        row = {"epoch": epoch, **{k: v / count for k, v in sums.items()}}
        if log_scale_of is not None:
            row["log_scale"] = float(log_scale_of())
        row.update(n_samples=count, time_s=time.perf_counter() - t0)
        if on_epoch_end is not None:
            on_epoch_end(row)
        history.append(row)
        log.info("epoch %d/%d loss %.6g (%.1f s)", epoch, cfg.epochs, row["loss"], row["time_s"])
        if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"training loss became {row['loss']} at epoch {epoch}; lower the learning rate")
        improved = not np.isfinite(best) or row["loss"] < best - cfg.min_delta
        if improved:
            best, best_weights, wait = row["loss"], model.get_weights(), 0
        else:
            wait += 1
            if cfg.patience and wait >= cfg.patience:
                log.info("early stopping: no improvement for %d epochs (best loss %.6g)", wait, best)
                break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history


def plot_history(path, history: list[dict], title: str) -> None:
    """Loss per epoch (and the Baseline's MAE parts) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    ax.plot(epochs, [r["loss"] for r in history], "o-", ms=3, label="loss")
    for key in ("mae_amplitude", "mae_phase"):
        if key in history[0]:
            ax.plot(epochs, [r[key] for r in history], ".--", label=key)
    for key, style, label in (("loss_flat", ":", "flat object"), ("loss_truth", "--", "ground truth")):
        if key in history[0] and np.isfinite(history[0][key]):
            ax.axhline(history[0][key], color="k", ls=style, lw=1, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend()
    save_figure(path, fig, dpi=100)
    plt.close(fig)


def train_model(kind: str, chunk_paths: list, training: dict, model_cfg: dict,
                model_path, history_path, curve_path, on_epoch_end=None) -> dict:
    """Train ``kind`` ("pinn" | "baseline") on the train split's chunks and write the three outputs.

    ``on_epoch_end(row, model)`` may add entries to an epoch's history row (the learning-curve
    benchmark scores the model there). Returns a summary (network config, epochs run, best
    loss, wall time).
    """
    import keras
    import pandas as pd

    check_kind(kind)
    cfg = TrainingConfig.from_dict(dict(training))
    keras.utils.set_random_seed(cfg.seed)
    summary = scan_chunks(chunk_paths, kind)
    net = model_config(kind, summary, dict(model_cfg))
    log.info("training %s on %d chunk(s), %d groups: %s, %s", kind, len(chunk_paths), summary.n_groups,
             net.as_dict(), asdict(cfg))
    model = build_model(kind, net, summary.probe)
    log.info("%s: %d parameters", kind, model.count_params())
    codes = augmentation(cfg.augment, summary.probe)
    dataset, _ = make_dataset(chunk_paths, kind, net.N, net.C, cfg.batch_size, cfg.seed, cfg.shuffle_buffer,
                              augment=codes)
    scale = model.get_layer("intensity_scale")
    weight = pixel_weight(cfg.loss_weight, summary.probe, net.N) if kind == "baseline" else None
    ref = reference_losses(chunk_paths, kind, weight)
    if ref:
        log.info("reference losses on the training data: ground truth %.6g, flat object %.6g",
                 ref["loss_truth"], ref["loss_flat"])

    def epoch_end(row):
        if ref:
            row.update(ref, gap_closed=gap_closed(row["loss"], ref))
        if on_epoch_end is not None:
            on_epoch_end(row, model)

    t0 = time.perf_counter()
    history = fit(model, dataset, make_loss(kind, model, weight), cfg, log_scale_of=lambda: scale.log_scale.numpy(),
                  on_epoch_end=epoch_end)
    wall = time.perf_counter() - t0
    with atomic_path(model_path, ".keras") as tmp:
        model.save(tmp)
    save_csv(history_path, pd.DataFrame(history))
    plot_history(curve_path, history, f"{kind}: {summary.n_groups} groups, N={net.N}, C={net.C}")
    best = min(r["loss"] for r in history)
    log.info("%s trained: %d epochs, best loss %.6g (gap to the truth closed: %.3f), %.1f s", kind, len(history),
             best, gap_closed(best, ref), wall)
    return {"net": net.as_dict(), "epochs_run": len(history), "best_loss": best, "wall_time_s": wall,
            "n_groups": summary.n_groups, "parameters": int(model.count_params())}
