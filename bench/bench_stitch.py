"""What the networks export and how it is stitched: SSIM of every variant on a finished run.

    .venv/bin/python bench/bench_stitch.py [--results results] [--rounds 5]   # writes bench/stitch.md, stitch.csv

For every dose × view × split and network of a finished default run (``make run``), the split's
chunks are predicted in one in-process pass with the trained model, once per export (PINN:
``raw`` decoder output and ``constrained``, the patches after the overlap constraint that the
Poisson loss sees; the Baseline has only one), stitched with each window (``central`` 0.5,
``central`` 0.2, ``probe``) without and with per-group phase reconciliation (``--rounds``), and
scored exactly as Phase G scores every arm (crop to the scanned region, sub-pixel registration,
global phase and amplitude scale; ``ptychostudy.metrics``). The flat object is scored the same
way. Also recorded: the median over patterns of predicted ÷ measured total counts per export.
No ground truth enters a reconstruction; it is used for the scores only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ptychostudy.runtime import configure_tensorflow  # noqa: E402

tf = configure_tensorflow(1)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import machine  # noqa: E402

from ptychostudy import metrics as M  # noqa: E402
from ptychostudy.compare import trivial_object, view_region  # noqa: E402
from ptychostudy.config import build_plan  # noqa: E402
from ptychostudy.io import load_npz  # noqa: E402
from ptychostudy.models.infer import Predictor, counts_ratio  # noqa: E402
from ptychostudy.shards import load_chunk  # noqa: E402
from ptychostudy.stitch import make_window, merge_arrays  # noqa: E402

WINDOWS = (("central", 0.5), ("central", 0.2), ("probe", None))


def ssim_pair(obj, truth, region) -> tuple[float, float]:
    """(phase SSIM, amplitude SSIM) after Phase G's alignment."""
    values, _ = M.evaluate(M.align(obj, truth, region))
    return values["phase"]["ssim"], values["amplitude"]["ssim"]


def split_data(res: Path, dose, view: str, split: str):
    paths = sorted((res / f"phase_d/dose_{dose}/{view}/{split}/chunks").glob("chunk_*.npz"))
    if not paths:
        raise SystemExit(f"no chunk files under {res}/phase_d/dose_{dose}/{view}/{split}: run `make run` first")
    data = [load_chunk(p, optional=("probeGuess",)) for p in paths]
    diff = np.concatenate([d["diffraction"] for d in data])
    rel = np.concatenate([d["coords_relative"] for d in data])
    pos = np.concatenate([d["coords_center"][:, None, :] + d["coords_relative"] for d in data])
    c = load_npz(res / f"phase_c/dose_{dose}/{split}.npz", required=("objectGuess", "probeGuess", "xcoords", "ycoords"))
    g = load_npz(res / f"phase_d/dose_{dose}/{view}/{split}/groups.npz", required=("view_index",))
    region = view_region(c, g, c["objectGuess"].shape)
    return diff, rel, pos, c["objectGuess"], c["probeGuess"], region


def measure(res: Path, plan, rounds: int, views=None, doses=None, model_paths=None) -> pd.DataFrame:
    """``model_paths``: {name: path} to score other trained models than the run's (e.g. a
    learning-curve run's) on the run's data; only those networks are then scored."""
    rows = []
    for dose in doses or plan.doses:
        for view in views or plan.view_names:
            for split in ("train", "test"):
                diff, rel, pos, truth, probe, region = split_data(res, dose, view, split)
                cell = {"dose": dose, "view": view, "split": split}
                ph, am = ssim_pair(trivial_object(truth.shape), truth, region)
                rows.append({**cell, "model": "flat", "export": "", "window": "", "rounds": 0,
                             "phase_ssim": ph, "amplitude_ssim": am, "counts_ratio": np.nan})
                for name in model_paths or plan.nn_models:
                    path = (model_paths or {}).get(name, res / f"phase_e/dose_{dose}/{view}/{name}/model.keras")
                    model = keras.models.load_model(path)
                    for export in (("raw", "constrained") if name == "pinn" else ("raw",)):
                        patches = Predictor(model, 64, export)(diff, rel)
                        ratio = float(np.median(counts_ratio(patches, probe, diff)))
                        for kind, frac in WINDOWS:
                            window = make_window(diff.shape[1], kind, frac or 0.5, probe=probe)
                            for r in (0, rounds):
                                t0 = time.perf_counter()
                                obj, _ = merge_arrays(patches, pos, truth.shape, window, phase_rounds=r)
                                ph, am = ssim_pair(obj, truth, region)
                                rows.append({**cell, "model": name, "export": export,
                                             "window": kind if frac is None else f"{kind} {frac}", "rounds": r,
                                             "phase_ssim": ph, "amplitude_ssim": am, "counts_ratio": ratio,
                                             "merge_s": time.perf_counter() - t0})
                    print(dose, view, split, name, flush=True)
    return pd.DataFrame(rows)


def page(df: pd.DataFrame, args, rounds: int) -> str:
    variant = ["model", "export", "window", "rounds"]
    nets = df[df.model != "flat"]
    top = df.dose.max()

    def wide(sub, value):
        t = sub.pivot_table(index=variant, columns=["view", "split"], values=value, aggfunc="mean")
        return t[[c for c in [("dense", "train"), ("dense", "test"), ("sparse", "train"), ("sparse", "test")]
                  if c in t.columns]]

    def table(t, fmt="{:.3f}"):
        head = "| model | export | window | rounds | " + " | ".join(f"{v} {s}" for v, s in t.columns) + " |"
        out = [head, "|---|---|---|---:|" + "---:|" * len(t.columns)]
        for idx, r in t.iterrows():
            out.append("| " + " | ".join(str(i) for i in idx) + " | " + " | ".join(fmt.format(x) for x in r) + " |")
        return out

    flat = df[df.model == "flat"].groupby(["view", "split"])[["phase_ssim", "amplitude_ssim"]].mean()
    lines = [
        "# Export and stitching of the networks (a finished default run)",
        "",
        f"Machine: {machine()}",
        "Command: `.venv/bin/python bench/bench_stitch.py " + " ".join(sys.argv[1:]) + "` on the `make run` "
        f"results of {args.configfile}.",
        "",
        "Every variant is scored as Phase G scores every arm (crop, sub-pixel registration, global phase",
        "and amplitude scale). `raw`: the PINN decoder's patches; `constrained`: after the overlap",
        "constraint, what the Poisson loss sees (the Baseline has one export). `rounds`: passes of",
        "per-group phase reconciliation in the merge (0: plain weighted average).",
        "",
        f"## Phase SSIM at dose {top:g}",
        "",
        *table(wide(nets[nets.dose == top], "phase_ssim")),
        "",
        f"## Amplitude SSIM at dose {top:g}",
        "",
        *table(wide(nets[nets.dose == top], "amplitude_ssim")),
        "",
        f"## Phase SSIM, mean over the doses {', '.join(f'{d:g}' for d in sorted(df.dose.unique()))}",
        "",
        *table(wide(nets, "phase_ssim")),
        "",
        "Flat object (amplitude 1, phase 0), same scoring, phase / amplitude SSIM: "
        + "; ".join(f"{v} {s} {r.phase_ssim:.3f} / {r.amplitude_ssim:.3f}" for (v, s), r in flat.iterrows()) + ".",
        "",
        "## Predicted ÷ measured total counts per pattern (median over a split's patterns)",
        "",
        "| model | export | dose | view | split | ratio |",
        "|---|---|---:|---|---|---:|",
    ]
    ratios = nets.drop_duplicates(["model", "export", "dose", "view", "split"])
    lines += [f"| {r.model} | {r.export} | {r.dose:g} | {r.view} | {r.split} | {r.counts_ratio:.3f} |"
              for r in ratios.itertuples()]
    lines += ["", f"Merge time with {rounds} rounds vs none (mean per split): "
              f"{nets[nets.rounds == rounds].merge_s.mean():.2f} s vs {nets[nets.rounds == 0].merge_s.mean():.2f} s."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="results folder of a finished run")
    ap.add_argument("--configfile", default="config/config.yaml", help="the run's config")
    ap.add_argument("--rounds", type=int, default=5, help="phase reconciliation rounds of the reconciled variants")
    ap.add_argument("--views", nargs="*", help="views to measure (default: all of the config)")
    ap.add_argument("--doses", nargs="*", type=int, help="doses to measure (default: all of the config)")
    ap.add_argument("--pinn-model", help="score this trained PINN instead of the run's (with --doses, --views)")
    ap.add_argument("--page", default="stitch", help="name of the page and CSV under bench/")
    args = ap.parse_args()
    plan = build_plan(yaml.safe_load(Path(args.configfile).read_text()))
    models = {"pinn": args.pinn_model} if args.pinn_model else None
    df = measure(Path(args.results), plan, args.rounds, args.views, args.doses, models)
    df.to_csv(ROOT / "bench" / f"{args.page}.csv", index=False)
    text = page(df, args, args.rounds)
    (ROOT / "bench" / f"{args.page}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
