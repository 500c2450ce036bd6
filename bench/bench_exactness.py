"""Chunked = unchunked on a finished run: merged.npz against one in-process pass over the split.

    .venv/bin/python bench/bench_exactness.py [--results results]   # writes bench/exactness.md

For every dose × view × split × network of a finished run (``make run``), the split's chunk
files are read back, all their groups are predicted in one in-process pass with the trained
model (``Predictor``, one batch size for everything), stitched at once (``merge_arrays``) with
the run's window, and compared with the run's ``merged.npz``, which the workflow built from one
``infer_chunk`` job per chunk and the streaming ``merge_chunks``. The contract (docs/design.md,
"Numbers the project holds itself to") is a maximum absolute difference ≤ 1e-5.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from ptychostudy.runtime import configure_tensorflow  # noqa: E402

# one thread, as the infer_chunk jobs run: with two, float32 reductions in the network run in another
# order (~1e-7), which the PINN's phase reconciliation carries to ~2e-5 in single-chunk cells
tf = configure_tensorflow(1)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import machine  # noqa: E402

from ptychostudy.config import build_plan  # noqa: E402
from ptychostudy.io import load_npz  # noqa: E402
from ptychostudy.models.infer import Predictor  # noqa: E402
from ptychostudy.shards import load_chunk  # noqa: E402
from ptychostudy.stitch import make_window, merge_arrays  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="results folder of a finished run")
    ap.add_argument("--configfile", default="config/config.yaml", help="the run's config")
    args = ap.parse_args()
    res = Path(args.results)
    cfg = yaml.safe_load(Path(args.configfile).read_text())
    plan = build_plan(cfg)
    stitch = cfg.get("stitch", {})
    rows = []
    for dose in plan.doses:
        for view in plan.view_names:
            for model_name in plan.nn_models:
                model = keras.models.load_model(res / f"phase_e/dose_{dose}/{view}/{model_name}/model.keras")
                predictor = Predictor(model, 64)
                rounds = stitch.get("phase_rounds", 5) if model_name in stitch.get("reconcile", ["pinn"]) else 0
                for split in ("train", "test"):
                    chunks = sorted((res / f"phase_d/dose_{dose}/{view}/{split}/chunks").glob("chunk_*.npz"))
                    data = [load_chunk(p) for p in chunks]
                    diff = np.concatenate([d["diffraction"] for d in data])
                    rel = np.concatenate([d["coords_relative"] for d in data])
                    pos = np.concatenate([d["coords_center"][:, None, :] + d["coords_relative"] for d in data])
                    c = load_npz(res / f"phase_c/dose_{dose}/{split}.npz", required=("objectGuess", "probeGuess"))
                    window = make_window(diff.shape[1], stitch.get("window", "probe"),
                                         stitch.get("central_fraction", 0.5), probe=c["probeGuess"])
                    obj, _ = merge_arrays(predictor(diff, rel), pos, c["objectGuess"].shape, window, phase_rounds=rounds)
                    merged = load_npz(res / f"inference/dose_{dose}/{view}/{split}/{model_name}/merged.npz")["object"]
                    diff_max = float(np.max(np.abs(merged - obj)))
                    rows.append((dose, view, split, model_name, len(chunks), len(diff), diff_max))
                    print(rows[-1], flush=True)
    worst = max(r[-1] for r in rows)
    lines = [
        "# Chunked inference + streaming merge = one unchunked pass",
        "",
        f"Machine: {machine()}",
        f"Command: `.venv/bin/python bench/bench_exactness.py` on the `make run` results of {args.configfile}.",
        "",
        "| dose | view | split | model | chunks | groups | max abs difference |",
        "|---:|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {d} | {v} | {s} | {m} | {k} | {g} | {x:.2e} |" for d, v, s, m, k, g, x in rows]
    lines += ["", f"Largest difference over all {len(rows)} reconstructions: {worst:.2e} (contract: ≤ 1e-5)."]
    (ROOT / "bench" / "exactness.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
