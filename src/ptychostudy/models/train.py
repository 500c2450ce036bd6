"""Training of PtychoPINN and the Baseline from a split's chunk files (streamed, never all in memory).

Validation decides (docs/design.md): after every epoch the loss on the validation split's chunks
is evaluated (the PINN's Poisson NLL of the validation diffraction, which needs no ground truth;
the Baseline's weighted MAE on its validation targets), the weights of the epoch with the lowest
validation loss are the ones saved, and training stops early after ``patience`` epochs without
improvement (0: all epochs). The test split never enters training. Outputs: ``model.keras``
(loads with ``keras.models.load_model``, no training state), ``history.csv`` (one row per
epoch: training and validation loss, optimisation steps and samples so far, the selected epoch,
and where the chunks hold true patches the reference losses of the ground truth and of a flat
object with the fraction of that gap closed, :func:`reference_losses`, diagnostics only) and a
loss-curve PNG, all written atomically.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..config import ConfigError
from ..io import DataError, atomic_path, save_csv, save_figure
from .augment import AUGMENT_MODES, probe_symmetries
from .data import check_kind, make_dataset, read_chunk_keys, scan_chunks
from .physics import canvas_pad, poisson_nll
from .pinn import INPUTS, NetConfig

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
    allowed = {"filters", "input"}
    unknown = sorted(set(model_cfg) - allowed)
    if unknown:
        raise ConfigError(f"config key 'model.{unknown[0]}': unknown; expected keys among {sorted(allowed)}")
    filters = model_cfg.get("filters", 16)
    if not isinstance(filters, int) or filters < 1:
        raise ConfigError(f"config key 'model.filters': expected a positive integer, got {filters!r}")
    net_input = model_cfg.get("input", "amplitude")
    if net_input not in INPUTS:
        raise ConfigError(f"config key 'model.input': expected one of {list(INPUTS)}, got {net_input!r}")
    # Normalised amplitudes get unit RMS per pixel: s = sqrt(mean Σ counts) / N.
    log_scale = 0.5 * math.log(max(summary.mean_total_counts, 1e-12)) - math.log(summary.N)
    pad = canvas_pad(summary.max_offset, summary.N) if (kind == "pinn" and summary.C > 1) else 0
    return NetConfig(N=summary.N, C=summary.C, filters=filters, pad=pad, log_scale=log_scale, input=net_input)


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


def reference_losses(paths: list, kind: str, weight: np.ndarray | None = None, batch: int = 64) -> dict:
    """The two ends of the scale the loss moves on, on the same data (train or validation chunks).

    ``loss_truth``: the loss of the ground-truth patches (PINN: their Poisson NLL through the
    forward model, the floor a converged model approaches; Baseline: 0). ``loss_flat``: the loss
    of the best flat object (PINN: a constant amplitude that matches the mean total counts, zero
    phase; Baseline: the mean true amplitude, zero phase, with the MAE's pixel ``weight``). A
    diagnostic drawn beside the curves; it never chooses anything. Empty when the chunks hold
    no true ``patches``. One chunk in memory at a time, the forward model in batches of
    ``batch`` groups.
    """
    from ..conventions import expected_counts, poisson_nll

    if not paths or not all(_has_truth(p) for p in paths):
        return {}
    sums = {"truth": 0.0, "flat": 0.0}
    count = 0
    if kind == "pinn":
        # flat amplitude a with a²·Σ|P|² = mean measured total counts (Parseval)
        total, patterns, probe2 = 0.0, 0, None
        for path in paths:
            d = read_chunk_keys(path, ("diffraction", "probeGuess"))
            total += float(np.sum(d["diffraction"].astype(np.float64) ** 2))
            patterns += d["diffraction"].shape[0] * d["diffraction"].shape[3]
            probe2 = np.abs(d["probeGuess"].astype(np.complex128)) ** 2
        a2 = total / max(patterns, 1) / float(probe2.sum())
        flat = None  # the flat object's counts, the same for every pattern

        for path in paths:
            d = read_chunk_keys(path, ("diffraction", "patches", "probeGuess"))
            n = d["diffraction"].shape[1]
            probe = d["probeGuess"]
            if flat is None:
                flat = a2 * expected_counts(probe, np.ones((1, n, n)))
            for s in range(0, d["diffraction"].shape[0], batch):
                k = np.moveaxis(d["diffraction"][s : s + batch].astype(np.float64) ** 2, 3, 1).reshape(-1, n, n)
                truth = np.moveaxis(d["patches"][s : s + batch], 3, 1).reshape(-1, n, n)
                sums["truth"] += float(poisson_nll(expected_counts(probe, truth), k).sum())
                sums["flat"] += float(poisson_nll(np.broadcast_to(flat, k.shape), k).sum())
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


def augmentation(mode: str, probe, kind: str = "training") -> tuple[int, ...]:
    """The symmetry elements training draws from (:mod:`.augment`): ``(0,)`` for ``"none"``; for
    ``"dihedral"`` those of the 8 the probe really has. A probe with none but the identity is a
    config error: the augmentation would not be physics."""
    if mode == "none":
        return (0,)
    codes = probe_symmetries(probe)
    if len(codes) == 1:
        raise ConfigError(
            f"config key '{kind}.augment' (or 'training.augment'): 'dihedral' needs a probe with symmetries of "
            "the square (transpose or flips about the patch centre), and this probe has none; "
            "expected 'none' for it"
        )
    log.info("augmentation: %d symmetries of the probe %s", len(codes), codes)
    return codes


def make_evaluator(dataset, loss_fn):
    """``evaluate() -> mean loss`` over one pass of an unshuffled dataset (the validation split)."""
    import tensorflow as tf

    @tf.function(input_signature=[dataset.element_spec])
    def eval_step(batch):
        loss, _ = loss_fn(batch, False)
        return loss

    def evaluate() -> float:
        total, count = 0.0, 0
        for batch in dataset:
            b = int(batch["diffraction"].shape[0])
            total += float(eval_step(batch)) * b
            count += b
        if count == 0:
            raise ValueError("the validation chunks hold no samples")
        return total / count

    return evaluate


def fit(model, dataset, loss_fn, cfg: TrainingConfig, validate=None, log_scale_of=None,
        on_epoch_end=None) -> list[dict]:
    """Adam on the streamed batches; keeps the weights of the epoch with the lowest monitored loss.

    The monitored loss is ``validate()`` (the validation split's loss, evaluated after every
    epoch) when given, else the epoch's mean training loss. Early stopping after ``patience``
    epochs without improvement (0: all epochs). Returns the history, one dict per epoch (epoch,
    loss, val_loss, metrics, steps and samples so far, log_scale, time_s, selected).
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

    history, best, best_epoch, best_weights, wait = [], math.inf, 0, None, 0
    steps = samples = 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        sums, count = {}, 0
        for batch in dataset:
            loss, metrics = train_step(batch)
            b = int(batch["diffraction"].shape[0])
            for k, v in {"loss": loss, **metrics}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * b
            count += b
            steps += 1
        if count == 0:
            raise ValueError("the training chunks hold no samples")
        samples += count
        row = {"epoch": epoch, **{k: v / count for k, v in sums.items()}}
        t_train = time.perf_counter() - t0
        if validate is not None:
            row["val_loss"] = validate()
        if log_scale_of is not None:
            row["log_scale"] = float(log_scale_of())
        row.update(steps=steps, samples=samples, n_samples=count, time_s=time.perf_counter() - t0,
                   train_time_s=t_train)
        if not np.isfinite(row["loss"]):
            raise FloatingPointError(f"training loss became {row['loss']} at epoch {epoch}; lower the learning rate")
        monitored = row.get("val_loss", row["loss"])
        improved = np.isfinite(monitored) and monitored < best - cfg.min_delta
        if improved:
            best, best_epoch, best_weights, wait = monitored, epoch, model.get_weights(), 0
        else:
            wait += 1
        if on_epoch_end is not None:
            on_epoch_end(row)
        history.append(row)
        log.info("epoch %d/%d loss %.6g%s (%.1f s)", epoch, cfg.epochs, row["loss"],
                 f" val_loss {row['val_loss']:.6g}" if "val_loss" in row else "", row["time_s"])
        if cfg.patience and wait >= cfg.patience:
            log.info("early stopping: no improvement for %d epochs (best %s %.6g at epoch %d)", wait,
                     "val_loss" if validate is not None else "loss", best, best_epoch)
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    for row in history:
        row["selected"] = row["epoch"] == best_epoch
    return history


def plot_history(path, history: list[dict], title: str) -> None:
    """Training and validation loss per epoch (and the Baseline's MAE parts), the selected epoch
    marked, the flat object's and the truth's losses as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), constrained_layout=True)
    ax.plot(epochs, [r["loss"] for r in history], "o-", ms=3, label="training loss")
    if "val_loss" in history[0]:
        ax.plot(epochs, [r["val_loss"] for r in history], "s-", ms=3, label="validation loss")
        sel = [r for r in history if r.get("selected")]
        if sel:
            ax.axvline(sel[0]["epoch"], color="0.5", lw=1, ls="-.", label=f"kept: epoch {sel[0]['epoch']}")
    for key in ("mae_amplitude", "mae_phase"):
        if key in history[0]:
            ax.plot(epochs, [r[key] for r in history], ".--", label=key)
    for key, style, label in (("loss_flat", ":", "flat object (train)"), ("loss_truth", "--", "ground truth (train)")):
        if key in history[0] and np.isfinite(history[0][key]):
            ax.axhline(history[0][key], color="k", ls=style, lw=1, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    save_figure(path, fig, dpi=100)
    plt.close(fig)


#: groups (PINN) or patterns (Baseline) per batch of the validation pass (forward only)
EVAL_BATCH = 64


def train_model(kind: str, chunk_paths: list, training: dict, model_cfg: dict,
                model_path, history_path, curve_path, validation_paths: list | None = None,
                on_epoch_end=None) -> dict:
    """Train ``kind`` ("pinn" | "baseline") on the train split's chunks and write the three outputs.

    ``validation_paths``: the validation split's chunks. Their loss (the PINN's Poisson NLL of
    the validation diffraction, which needs no ground truth; the Baseline's weighted MAE on its
    validation targets) is evaluated after every epoch and selects the epoch whose weights are
    saved, and stops training early (``patience``). Without them the training loss does.
    ``on_epoch_end(row, model)`` may add entries to an epoch's history row (the learning-curve
    benchmark scores the model there). Returns a summary (network config, epochs run, selected
    epoch, its losses, steps, wall time).
    """
    import keras
    import pandas as pd

    check_kind(kind)
    cfg = TrainingConfig.from_dict(dict(training))
    keras.utils.set_random_seed(cfg.seed)
    validation_paths = list(validation_paths or [])
    summary = scan_chunks(chunk_paths, kind)
    if validation_paths:
        vsummary = scan_chunks(validation_paths, kind)
        if (vsummary.N, vsummary.C) != (summary.N, summary.C):
            raise DataError(f"{validation_paths[0]}: validation chunks have N={vsummary.N}, C={vsummary.C}; "
                            f"expected N={summary.N}, C={summary.C} as the training chunks")
        # the group canvas must hold the validation groups too (inference checks every chunk)
        summary = replace(summary, max_offset=max(summary.max_offset, vsummary.max_offset))
    net = model_config(kind, summary, dict(model_cfg))
    log.info("training %s on %d chunk(s), %d groups, validation on %d chunk(s): %s, %s", kind, len(chunk_paths),
             summary.n_groups, len(validation_paths), net.as_dict(), asdict(cfg))
    model = build_model(kind, net, summary.probe)
    log.info("%s: %d parameters", kind, model.count_params())
    codes = augmentation(cfg.augment, summary.probe, kind)
    dataset, _ = make_dataset(chunk_paths, kind, net.N, net.C, cfg.batch_size, cfg.seed, cfg.shuffle_buffer,
                              augment=codes)
    scale = model.get_layer("intensity_scale")
    weight = pixel_weight(cfg.loss_weight, summary.probe, net.N) if kind == "baseline" else None
    loss_fn = make_loss(kind, model, weight)
    validate = None
    if validation_paths:
        vdata, _ = make_dataset(validation_paths, kind, net.N, net.C, EVAL_BATCH, shuffle=False)
        validate = make_evaluator(vdata, loss_fn)
    ref = reference_losses(chunk_paths, kind, weight)
    vref = reference_losses(validation_paths, kind, weight) if validation_paths else {}
    if ref:
        log.info("reference losses on the training data: ground truth %.6g, flat object %.6g",
                 ref["loss_truth"], ref["loss_flat"])

    def epoch_end(row):
        if ref:
            row.update(ref, gap_closed=gap_closed(row["loss"], ref))
        if vref and "val_loss" in row:
            row.update(val_loss_truth=vref["loss_truth"], val_loss_flat=vref["loss_flat"],
                       val_gap_closed=gap_closed(row["val_loss"], vref))
        if on_epoch_end is not None:
            on_epoch_end(row, model)

    t0 = time.perf_counter()
    history = fit(model, dataset, loss_fn, cfg, validate=validate, log_scale_of=lambda: scale.log_scale.numpy(),
                  on_epoch_end=epoch_end)
    wall = time.perf_counter() - t0
    with atomic_path(model_path, ".keras") as tmp:
        model.save(tmp)
    save_csv(history_path, pd.DataFrame(history))
    plot_history(curve_path, history, f"{kind}: {summary.n_groups} groups, N={net.N}, C={net.C}, seed {cfg.seed}")
    kept = next(r for r in history if r["selected"])
    log.info("%s trained: %d epochs (%d steps), kept epoch %d: loss %.6g, validation loss %s, %.1f s", kind,
             len(history), history[-1]["steps"], kept["epoch"], kept["loss"], kept.get("val_loss", "—"), wall)
    return {"net": net.as_dict(), "epochs_run": len(history), "selected_epoch": int(kept["epoch"]),
            "loss": float(kept["loss"]), "val_loss": float(kept.get("val_loss", np.nan)),
            "steps": int(history[-1]["steps"]), "wall_time_s": wall, "n_groups": summary.n_groups,
            "parameters": int(model.count_params())}
