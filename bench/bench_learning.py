"""Learning curves: reconstruction quality on the train and test splits against optimisation steps.

    # one curve: train a network on one dose × view of a finished run (or a scratch run's data)
    .venv/bin/python bench/bench_learning.py run --data results --dose 100000 --view dense \
        --model pinn --epochs 150 --every 10 --tag pinn_default [--set learning_rate=0.003 ...]
    # all curves of bench/learning/*.csv into bench/learning.md and bench/learning.png
    .venv/bin/python bench/bench_learning.py plot

``run`` trains exactly as the ``train_pinn``/``train_baseline`` jobs do (``train_model``, the
config's training settings plus ``--set`` overrides of training or model keys), and every
``--every`` epochs scores the current weights the way the workflow would: per-chunk prediction
(the PINN's constrained export), the default merge (probe window; phase reconciliation for the
PINN) and Phase G's alignment and SSIM, on the train and on the test split. It also records the
training loss and the fraction of the gap between the flat object's and the truth's loss closed.
One thread (``--threads``): two curves run side by side on a 2-core machine.
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

import numpy as np  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args) -> None:
    from ptychostudy.runtime import configure_tensorflow

    configure_tensorflow(args.threads)
    import numpy as np
    import pandas as pd
    import yaml
    from bench_stitch import split_data, ssim_pair

    from ptychostudy.config import MODEL_TRAINING_KEYS
    from ptychostudy.models.infer import Predictor
    from ptychostudy.models.train import TrainingConfig, train_model
    from ptychostudy.stitch import make_window, merge_arrays

    cfg = yaml.safe_load(Path(args.configfile).read_text())
    training = dict(cfg["training"], seed=cfg["seeds"]["training"])
    model_cfg = {}
    for k, v in cfg.get(args.model, {}).items():
        (training if k in MODEL_TRAINING_KEYS else model_cfg)[k] = v
    training.update(epochs=args.epochs, patience=0)
    train_fields = set(TrainingConfig.__dataclass_fields__)
    for item in args.set:
        key, value = item.split("=", 1)
        (training if key in train_fields else model_cfg)[key] = parse_value(value)
    data = Path(args.data)
    chunks = sorted((data / f"phase_d/dose_{args.dose}/{args.view}/train/chunks").glob("chunk_*.npz"))
    splits = {s: split_data(data, args.dose, args.view, s) for s in ("train", "test")}
    stitch = cfg.get("stitch", {})
    rounds = stitch.get("phase_rounds", 5) if args.model in stitch.get("reconcile", ["pinn"]) else 0
    predictor = {}
    steps_per_epoch = []

    def score(row, model):
        steps_per_epoch.append(int(np.ceil(row["n_samples"] / training["batch_size"])))
        row["step"] = sum(steps_per_epoch)
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
        print(f"epoch {row['epoch']} step {row['step']} loss {row['loss']:.5g} gap {row.get('gap_closed', np.nan):.3f} "
              f"phase SSIM train {row['train_phase_ssim']:.3f} test {row['test_phase_ssim']:.3f}", flush=True)

    work = ROOT / "bench" / "_work" / "learning" / args.tag
    res = train_model(args.model, [str(p) for p in chunks], training, model_cfg, work / "model.keras",
                      work / "history.csv", work / "loss.png", on_epoch_end=score)
    hist = pd.read_csv(work / "history.csv")
    hist.insert(0, "tag", args.tag)
    from ptychostudy.compare import trivial_object

    for split, (_, _, _, truth, _, region) in splits.items():  # the flat object, scored alike
        hist[f"flat_{split}_phase_ssim"] = ssim_pair(trivial_object(truth.shape), truth, region)[0]
    for k, v in {"model": args.model, "dose": args.dose, "view": args.view, "data": args.data,
                 "groups": res["n_groups"], "parameters": res["parameters"],
                 "settings": json.dumps({**training, **model_cfg}, sort_keys=True)}.items():
        hist[k] = v
    OUT.mkdir(parents=True, exist_ok=True)
    hist.to_csv(OUT / f"{args.tag}.csv", index=False)
    print(f"wrote {OUT / (args.tag + '.csv')} ({res['wall_time_s']:.0f} s training + scoring)")


def read_log(path: Path):
    """A curve stopped before its end: the scored epochs ``run`` printed (saved as <tag>_interrupted.log)."""
    import re

    import pandas as pd

    pat = re.compile(r"epoch (\d+) step (\d+) loss (\S+) gap (\S+) phase SSIM train (\S+) test (\S+)")
    rows = [dict(zip(("epoch", "step", "loss", "gap_closed", "train_phase_ssim", "test_phase_ssim"),
                     map(float, m.groups()))) for m in map(pat.search, path.read_text().splitlines()) if m]
    df = pd.DataFrame(rows)
    tag = path.stem
    settings = {"pinn_d1e5_default_f8_interrupted": '{"filters": 8}',
                "pinn_d1e5_default_lr3e-3_interrupted": '{"learning_rate": 0.003}'}.get(tag, "see the tag")
    return df.assign(tag=tag, model="pinn", data="results", dose=100000, view="dense", groups=256,
                     time_s=np.nan, settings=settings)


def plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from common import machine

    frames = [pd.read_csv(p) for p in sorted(OUT.glob("*.csv"))] + [read_log(p) for p in sorted(OUT.glob("*.log"))]
    if not frames:
        raise SystemExit(f"no curves in {OUT}: run `bench_learning.py run` first")
    from bench_stitch import split_data, ssim_pair

    from ptychostudy.compare import trivial_object

    flat = {}  # (data, dose, view) -> {split: flat object's phase SSIM}, scored like the curves
    for df in frames:
        key = (str(df["data"].iloc[0]), int(df["dose"].iloc[0]), str(df["view"].iloc[0]))
        if key in flat:
            continue
        if "flat_test_phase_ssim" in df:  # recorded with the curve (its data may be gone)
            flat[key] = {s: float(df[f"flat_{s}_phase_ssim"].iloc[0]) for s in ("train", "test")}
            continue
        flat[key] = {}
        for split in ("train", "test"):
            _, _, _, truth, _, region = split_data(Path(key[0]), key[1], key[2], split)
            flat[key][split] = ssim_pair(trivial_object(truth.shape), truth, region)[0]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2), constrained_layout=True)
    lines = ["# Learning curves", "", f"Machine: {machine()}", "",
             "Each curve: `bench/bench_learning.py run` (settings in bench/learning/<tag>.csv). Phase SSIM",
             "after the workflow's export, merge and Phase G alignment; `gap`: fraction of the way from",
             "the flat object's training loss to the ground truth's.", "",
             "| tag | model | data | groups | steps | s/step | gap | train phase SSIM | test phase SSIM | flat object train / test | settings |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    colors = plt.get_cmap("tab20").colors
    for i, df in enumerate(frames):
        tag = df["tag"].iloc[0]
        scored = df.dropna(subset=["test_phase_ssim"])
        # augmented curves bold, Baseline dashed: 19 curves stay tellable apart
        style = dict(color=colors[i % len(colors)], ms=3, lw=2.2 if "dihedral" in str(df["settings"].iloc[0]) else 1.0,
                     ls="--" if df["model"].iloc[0] == "baseline" else "-", marker="o")
        axes[0].plot(scored["step"], scored["train_phase_ssim"], label=tag, **style)
        axes[1].plot(scored["step"], scored["test_phase_ssim"], label=tag, **style)
        if "gap_closed" in df:
            axes[2].plot(df["step"], df["gap_closed"], **{**style, "marker": None}, label=tag)
        if "n_samples" in df:  # compute: samples (groups or patterns) passed through the network
            axes[3].plot(scored["epoch"] * df["n_samples"].iloc[0], scored["test_phase_ssim"], label=tag, **style)
        last = scored.iloc[-1]
        f = flat[(str(last["data"]), int(last["dose"]), str(last["view"]))]
        s_per_step = df["time_s"].sum() / df["step"].iloc[-1] if df["time_s"].notna().all() else float("nan")
        gap = f"{last['gap_closed']:.3f}" if "gap_closed" in last else "—"
        lines.append(f"| {tag} | {last['model']} | {last['data']} d{last['dose']} {last['view']} | {last['groups']} | "
                     f"{int(last['step'])} | {s_per_step:.3f} | {gap} | {last['train_phase_ssim']:.3f} | "
                     f"{last['test_phase_ssim']:.3f} | {f['train']:.3f} / {f['test']:.3f} | `{last['settings']}` |")
    for (data, dose, view), f in flat.items():
        for ax, split in zip(axes[:2], ("train", "test")):
            ax.axhline(f[split], color="k", ls=":", lw=1)
            ax.annotate(f"flat object ({Path(data).parent.name or data} d{dose} {view})", (0, f[split]), fontsize=6,
                        va="bottom")
    titles = ("train split: phase SSIM", "test split: phase SSIM", "training loss: gap closed",
              "test split: phase SSIM against samples seen")
    for ax, title in zip(axes, titles):
        ax.set_xlabel("samples seen (epochs × training samples)" if ax is axes[3] else "optimisation steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.savefig(ROOT / "bench" / "learning.png", dpi=90)
    lines += ["", "![learning curves](learning.png)", ""]
    (ROOT / "bench" / "learning.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", default="results", help="results folder holding phase_c and phase_d of the cell")
    r.add_argument("--configfile", default="config/config.yaml")
    r.add_argument("--dose", type=int, default=100000)
    r.add_argument("--view", default="dense")
    r.add_argument("--model", default="pinn", choices=["pinn", "baseline"])
    r.add_argument("--epochs", type=int, default=100)
    r.add_argument("--every", type=int, default=10)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--tag", required=True)
    r.add_argument("--set", action="append", default=[], help="KEY=VALUE override of a training or model key")
    sub.add_parser("plot")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else plot(args)


if __name__ == "__main__":
    main()
