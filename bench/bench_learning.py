"""Learning curves: reconstruction quality on the train and validation splits against optimisation steps.

    # the data of a study (Phase C and D), without training: once per config
    .venv/bin/snakemake -d bench/_work/data --configfile config/config.yaml --until shard_chunk --cores 2
    # one curve: train a network on one dose × view of that data, as the workflow's job does
    .venv/bin/python bench/bench_learning.py run --data bench/_work/data/results --dose 100000 --view dense \
        --model pinn --epochs 60 --every 5 --tag pinn_default [--set learning_rate=0.003 ...]
    # all curves of bench/learning/*.csv into bench/learning.md and bench/learning.png
    .venv/bin/python bench/bench_learning.py plot

``run`` trains exactly as the ``train_pinn``/``train_baseline`` jobs do (``train_model`` with the
validation split's chunks: the validation loss is recorded every epoch and selects the kept
epoch), with the config's training settings plus ``--set`` overrides of training or model keys,
and every ``--every`` epochs scores the current weights the way the workflow would: per-chunk
prediction (the PINN's constrained export), the default merge (probe window; phase
reconciliation for the PINN) and Phase G's alignment and offset-free phase SSIM, on the
**train and validation** splits. The test split is never read: recipes are chosen here, on
validation, and the test split reports once, in the workflow. One thread (``--threads``): two
curves run side by side on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "learning"
SPLITS = ("train", "validation")
#: the first line of the conclusions written into learning.md by hand; ``plot`` keeps them
FINDINGS = "What the curves chose"

import numpy as np  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def chunk_files(data: Path, dose, view, split) -> list:
    paths = sorted((data / f"phase_d/dose_{dose}/{view}/{split}/chunks").glob("chunk_*.npz"))
    if not paths:
        raise SystemExit(f"no chunk files under {data}/phase_d/dose_{dose}/{view}/{split}: prepare the data first "
                         "(see this file's docstring)")
    return paths


def run(args) -> None:
    from ptychostudy.runtime import configure_tensorflow

    configure_tensorflow(args.threads)
    import pandas as pd
    import yaml
    from bench_stitch import split_data, ssim_pair

    from ptychostudy.compare import trivial_object
    from ptychostudy.config import network_architecture, network_training
    from ptychostudy.models.infer import Predictor
    from ptychostudy.models.train import TrainingConfig, train_model
    from ptychostudy.stitch import make_window, merge_arrays

    cfg = yaml.safe_load(Path(args.configfile).read_text())
    training = network_training(cfg, args.model, args.seed)
    model_cfg = network_architecture(cfg, args.model)
    training.update(epochs=args.epochs)
    train_fields = set(TrainingConfig.__dataclass_fields__)
    for item in args.set:
        key, value = item.split("=", 1)
        (training if key in train_fields else model_cfg)[key] = parse_value(value)
    data = Path(args.data)
    chunks = chunk_files(data, args.dose, args.view, "train")
    validation = chunk_files(data, args.dose, args.view, "validation")
    splits = {s: split_data(data, args.dose, args.view, s) for s in SPLITS}
    stitch = cfg.get("stitch", {})
    rounds = stitch.get("phase_rounds", 5) if args.model in stitch.get("reconcile", ["pinn"]) else 0
    predictor = {}

    def score(row, model):
        if row["epoch"] % args.every and row["epoch"] != args.epochs and row["epoch"] != 1:
            return
        t0 = time.perf_counter()
        pred = predictor.setdefault("p", Predictor(model, 64))
        for split, (diff, rel, pos, truth, probe, region) in splits.items():
            window = make_window(diff.shape[1], stitch.get("window", "probe"), stitch.get("central_fraction", 0.5),
                                 probe=probe)
            obj, _ = merge_arrays(pred(diff, rel), pos, truth.shape, window, phase_rounds=rounds)
            row[f"{split}_phase_ssim"], row[f"{split}_amplitude_ssim"] = ssim_pair(obj, truth, region)
        row["eval_s"] = time.perf_counter() - t0
        print(f"epoch {row['epoch']} step {row['steps']} loss {row['loss']:.5g} val_loss {row.get('val_loss', np.nan):.5g} "
              f"phase SSIM train {row['train_phase_ssim']:.3f} validation {row['validation_phase_ssim']:.3f} "
              f"({row['train_time_s']:.1f} s)", flush=True)

    work = ROOT / "bench" / "_work" / "learning" / args.tag
    res = train_model(args.model, [str(p) for p in chunks], training, model_cfg, work / "model.keras",
                      work / "history.csv", work / "loss.png", validation_paths=[str(p) for p in validation],
                      on_epoch_end=score)
    hist = pd.read_csv(work / "history.csv")
    hist.insert(0, "tag", args.tag)
    for split, (_, _, _, truth, _, region) in splits.items():  # the flat object, scored alike
        hist[f"flat_{split}_phase_ssim"] = ssim_pair(trivial_object(truth.shape), truth, region)[0]
    for k, v in {"model": args.model, "dose": args.dose, "view": args.view, "data": args.data,
                 "groups": res["n_groups"], "parameters": res["parameters"],
                 "settings": json.dumps({**training, **model_cfg}, sort_keys=True)}.items():
        hist[k] = v
    OUT.mkdir(parents=True, exist_ok=True)
    hist.to_csv(OUT / f"{args.tag}.csv", index=False)
    print(f"wrote {OUT / (args.tag + '.csv')} ({res['wall_time_s']:.0f} s training + scoring; kept epoch "
          f"{res['selected_epoch']})")


def plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from common import machine

    frames = [pd.read_csv(p) for p in sorted(OUT.glob("*.csv"))]
    if not frames:
        raise SystemExit(f"no curves in {OUT}: run `bench_learning.py run` first")
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.4), constrained_layout=True)
    lines = ["# Learning curves (train and validation splits)", "", f"Machine: {machine()}", "",
             "Each curve: `bench/bench_learning.py run` (settings in bench/learning/<tag>.csv), trained as the",
             "workflow trains (the validation loss of every epoch selects the kept epoch). Phase SSIM after the",
             "workflow's export, merge and Phase G's alignment (offset-free: both phase images shifted so the",
             "truth's minimum is 0), on the train and validation splits; the test split is never read here.",
             "`kept`: the epoch the validation loss selects, and its validation SSIM.", "",
             "| tag | model | dose | view | groups | steps | s/step | train SSIM (last) | validation SSIM (last) | "
             "kept epoch | validation SSIM (kept) | flat object (validation) | settings |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    colors = plt.get_cmap("tab20").colors
    for i, df in enumerate(frames):
        tag = df["tag"].iloc[0]
        scored = df.dropna(subset=["validation_phase_ssim"])
        style = dict(color=colors[i % len(colors)], ms=3, marker="o",
                     ls="--" if df["model"].iloc[0] == "baseline" else "-")
        axes[0].plot(scored["steps"], scored["train_phase_ssim"], label=tag, **style)
        axes[1].plot(scored["steps"], scored["validation_phase_ssim"], label=tag, **style)
        axes[2].plot(df["steps"], df["val_loss"], **{**style, "marker": None}, label=tag)
        axes[3].plot(df["samples"], np.interp(df["samples"], scored["samples"], scored["validation_phase_ssim"]),
                     **{**style, "marker": None}, label=tag)
        last = scored.iloc[-1]
        kept = df[df["selected"]].iloc[0]
        kept_ssim = np.interp(kept["steps"], scored["steps"], scored["validation_phase_ssim"])
        s_per_step = df["train_time_s"].sum() / df["steps"].iloc[-1]
        lines.append(f"| {tag} | {last['model']} | {last['dose']} | {last['view']} | {last['groups']} | "
                     f"{int(last['steps'])} | {s_per_step:.3f} | {last['train_phase_ssim']:.3f} | "
                     f"{last['validation_phase_ssim']:.3f} | {int(kept['epoch'])} | {kept_ssim:.3f} | "
                     f"{last['flat_validation_phase_ssim']:.3f} | `{last['settings']}` |")
        for ax, split in zip(axes[:2], SPLITS):
            ax.axhline(last[f"flat_{split}_phase_ssim"], color=style["color"], ls=":", lw=0.8)
    titles = ("train split: phase SSIM", "validation split: phase SSIM", "validation loss (selects the epoch)",
              "validation phase SSIM against samples seen")
    for ax, title in zip(axes, titles):
        ax.set_xlabel("samples seen (epochs × training samples)" if ax is axes[3] else "optimisation steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("symlog", linthresh=1e-3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.savefig(ROOT / "bench" / "learning.png", dpi=90)
    page = ROOT / "bench" / "learning.md"
    # the written conclusions (from FINDINGS up to the figure) survive a re-plot
    old = page.read_text() if page.exists() else ""
    findings = old[old.index(FINDINGS):old.index("![learning curves]")].rstrip() if FINDINGS in old else ""
    lines += ["", "Dotted lines: the flat object's score on each curve's data.", "", findings, "",
              "![learning curves](learning.png)", ""]
    page.write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", default="bench/_work/data/results", help="results folder holding phase_c and phase_d")
    r.add_argument("--configfile", default="config/config.yaml")
    r.add_argument("--dose", type=int, default=100000)
    r.add_argument("--view", default="dense")
    r.add_argument("--model", default="pinn", choices=["pinn", "baseline"])
    r.add_argument("--seed", type=int, default=7, help="training seed (one replicate)")
    r.add_argument("--epochs", type=int, default=60)
    r.add_argument("--every", type=int, default=5)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--tag", required=True)
    r.add_argument("--set", action="append", default=[], help="KEY=VALUE override of a training or model key")
    sub.add_parser("plot")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else plot(args)


if __name__ == "__main__":
    main()
