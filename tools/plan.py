"""Plan a study without data: jobs, disk and GPU job-hours per phase, and the rule graph.

    .venv/bin/python tools/plan.py --configfile config/study_fly64.yaml --out results/plan

Runs ``snakemake -n`` (nothing executes, no data needed) and reads every planned job with its
resources, prints a table of jobs per rule (GPU or CPU) and the totals, and writes
``plan.md``, ``rulegraph.dot`` and, when graphviz's ``dot`` is installed, ``rulegraph.svg``
under ``--out``. Two more tables:

- **Disk**: the bytes each phase writes, from the array shapes of the file contracts
  (docs/contracts.md) and the config alone (:func:`disk_estimate`; checked against a real run by
  the tests), and the peak when ``inference.keep_predictions`` is false: each split's chunk
  predictions then live only until its merge, so the peak holds at most the predictions of the
  splits being inferred at once (one per GPU job slot, ``--gpus``).
- **GPU job-hours**: the GPU rules' work (groups × epochs, groups, frames × epochs) divided by the
  per-unit rates measured for this config by ``bench/bench_costs.py`` (``bench/costs/<config
  name>.json``, on the machine named there), plus the fixed start-up of every job.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
JOB_HEAD = re.compile(r"^(?:local)?rule (\w+):\s*$")
RESOURCES = re.compile(r"^\s+resources:\s*(.*)$")


def dry_run(configfile: str, workdir: str) -> tuple[str, float]:
    """Text of a non-quiet dry run (one block per job) and its wall time."""
    start = time.perf_counter()
    res = subprocess.run(
        SNAKEMAKE + ["-n", "--configfile", str(Path(configfile).resolve()), "-d", workdir, "--forceall"],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr, elapsed


def count_jobs(text: str) -> dict:
    """rule -> {'jobs': n, 'gpu': n_gpu_jobs} from the job blocks of a dry run."""
    counts: dict = collections.defaultdict(lambda: {"jobs": 0, "gpu": 0})
    rule = None
    for line in text.splitlines():
        head = JOB_HEAD.match(line)
        if head:
            rule = head.group(1)
            counts[rule]["jobs"] += 1
            continue
        res = RESOURCES.match(line)
        if res and rule is not None:
            if re.search(r"(^|,\s*)gpu=([1-9]\d*)", res.group(1)):
                counts[rule]["gpu"] += 1
    return dict(counts)


def table(counts: dict, seconds: float, configfile: str) -> str:
    lines = [
        f"Plan of `{configfile}` (snakemake -n: {seconds:.1f} s)",
        "",
        "| rule | jobs | GPU jobs |",
        "|---|---:|---:|",
    ]
    for rule, c in sorted(counts.items(), key=lambda kv: -kv[1]["jobs"]):
        lines.append(f"| {rule} | {c['jobs']} | {c['gpu']} |")
    total = sum(c["jobs"] for c in counts.values())
    gpu = sum(c["gpu"] for c in counts.values())
    lines.append(f"| **total** | **{total}** | **{gpu}** (CPU jobs: {total - gpu}) |")
    return "\n".join(lines) + "\n"


#: phases of the disk table, in workflow order (the folders under results/)
PHASES = ("phase_c", "phase_d", "phase_e", "inference", "phase_f", "phase_g")


def split_positions(plan) -> dict:
    """split -> number of scan positions of the dose's Phase C file (every view's raster)."""
    from ptychostudy.config import SPLITS

    return {s: sum(v.n_positions(s) for v in plan.views.values()) for s in SPLITS}


def ptychi_runs(plan) -> int:
    """LSQML runs per cell: one, or one per replicate when its noise model is random (common.smk)."""
    per_replicate = plan.raw.get("ptychi", {}).get("noise_model", "gaussian") != "gaussian"
    return len(plan.replicates) if per_replicate else 1


def disk_estimate(plan, parameters: dict | None = None) -> dict:
    """Bytes each phase writes (key: the folder under results/), and the prediction files' share.

    From the array shapes of the contracts: float32 diffraction, complex64 patches and objects,
    float64 coordinates, int64 indices. ``parameters``: model -> parameter count (float32
    weights); without it the models count as 1 MB each. Figures (PNG) are not counted.
    Returns {phase: bytes, "predictions": bytes of all chunk prediction files, "largest_split":
    bytes of the chunk predictions of the largest split of one model and replicate}.
    """
    from ptychostudy.config import SCORED_SPLITS, SPLITS

    n2, c, size2 = plan.N**2, plan.C, plan.object_size**2
    doses, reps = len(plan.doses), len(plan.replicates)
    out = dict.fromkeys(PHASES, 0)
    # Phase C: diffraction, 4 per-position vectors, probe, and the split's own object, per dose and split
    for split, n_pos in split_positions(plan).items():
        out["phase_c"] += doses * (n_pos * (4 * n2 + 4 * 8) + 8 * n2 + 8 * size2)
    preds, largest = 0, 0
    for view, v in plan.views.items():
        for split in SPLITS:
            g = v.n_groups(split)
            groups = v.n_positions(split) * 8 + g * (c * 8 + 8 + 16 + c * 16)
            chunks = g * (12 * n2 * c + c * 16 + 16 + 8 + c * 8) + plan.n_chunks(view, split) * 8 * n2
            out["phase_d"] += doses * (groups + chunks)
            if split not in SCORED_SPLITS:
                continue  # validation only chooses: no inference, no LSQML
            pred = g * (8 * n2 * c + c * 16 + 8 + c * 8 + c * 8)
            merged = size2 * (8 + 4)  # complex64 object, float32 weight
            largest = max(largest, pred)
            preds += doses * reps * len(plan.nn_models) * pred
            out["inference"] += doses * reps * len(plan.nn_models) * (pred + merged)
            if "ptychi" in plan.models:  # object, probe, illumination
                out["phase_f"] += doses * ptychi_runs(plan) * (8 * size2 + 8 * n2 + 4 * size2)
    params = parameters or {}
    out["phase_e"] = doses * reps * len(plan.views) * sum(4 * params.get(m, 250_000) for m in plan.nn_models)
    return {**out, "predictions": preds, "largest_split": largest}


#: a forward pass (the validation loss) costs about this fraction of a training step per sample
FORWARD_FRACTION = 1 / 3


def gpu_hours(plan, costs: dict) -> dict:
    """rule -> (jobs, hours) of the GPU rules at the measured rates ``costs`` (bench_costs.py).

    Training runs at most the configured epochs (early stopping on the validation loss may end
    it sooner), each epoch followed by a forward pass over the validation split; the Baseline's
    samples are the train split's member patterns (one per position). Everything downstream of
    training runs once per replicate.
    """
    from ptychostudy.config import SCORED_SPLITS

    raw = plan.raw
    fixed = costs["fixed_s"]

    def epochs(model):
        return raw.get(model, {}).get("epochs", raw.get("training", {}).get("epochs", 30))

    cells, reps = len(plan.doses), len(plan.replicates)
    out = {}
    samples = {"pinn": lambda v, s: v.n_groups(s), "baseline": lambda v, s: v.n_positions(s)}
    for model in plan.nn_models:
        per_epoch = sum(samples[model](v, "train") + FORWARD_FRACTION * samples[model](v, "validation")
                        for v in plan.views.values())
        work = per_epoch * epochs(model) / costs[f"train_{model}_per_s"]
        out[f"train_{model}"] = (cells * reps * len(plan.views), cells * reps * (work + len(plan.views) * fixed) / 3600)
    jobs, secs = 0, 0.0
    for model in plan.nn_models:
        for view, v in plan.views.items():
            for split in SCORED_SPLITS:
                jobs += cells * reps * plan.n_chunks(view, split)
                secs += cells * reps * (plan.n_chunks(view, split) * fixed
                                        + v.n_groups(split) / costs[f"infer_{model}_groups_per_s"])
    out["infer_chunk"] = (jobs, secs / 3600)
    if "ptychi" in plan.models:
        runs = ptychi_runs(plan)
        frames = sum(v.n_positions(s) for v in plan.views.values() for s in SCORED_SPLITS)
        work = frames * raw.get("ptychi", {}).get("epochs", 50) / costs["lsqml_frames_per_s"]
        n_jobs = cells * len(plan.views) * len(SCORED_SPLITS) * runs
        out["reconstruct_ptychi"] = (n_jobs, (cells * runs * work + n_jobs * fixed) / 3600)
    return out


def gib(b: float) -> str:
    return f"{b / 2**30:,.2f} GiB" if b < 2**40 else f"{b / 2**40:,.2f} TiB"


def budget_tables(plan, configfile: str, costs_path: Path, slots: int) -> str:
    costs = json.loads(costs_path.read_text()) if costs_path.is_file() else None
    params = {m: costs[f"{m}_parameters"] for m in plan.nn_models} if costs else None
    disk = disk_estimate(plan, params)
    total = sum(disk[p] for p in PHASES)
    lines = ["", "## Disk (bytes written per phase, from the file contracts)", "",
             "| phase | written |", "|---|---:|"]
    lines += [f"| {p} | {gib(disk[p])} |" for p in PHASES]
    # estimate: a split's chunk jobs run together and its merge follows (Snakemake's scheduler
    # prefers jobs that let temporary files go); worst case (every split inferred before any
    # merge) is the kept total
    dropped = total - disk["predictions"] + min(disk["predictions"], slots * disk["largest_split"])
    lines += [f"| **total** (`inference.keep_predictions: true`) | **{gib(total)}** |",
              f"| of which chunk predictions | {gib(disk['predictions'])} |",
              f"| **peak with `keep_predictions: false`** (estimate: each split's predictions deleted at its merge, "
              f"{slots} split(s) in flight, one per GPU slot; worst case: the total above) | **{gib(dropped)}** |",
              f"| left at the end with `keep_predictions: false` | {gib(total - disk['predictions'])} |", ""]
    lines += ["## GPU job-hours", ""]
    if costs is None:
        lines += [f"No measured costs for this config: run `.venv/bin/python bench/bench_costs.py --configfile "
                  f"{configfile}` on the machine that will run it (writes {costs_path.relative_to(ROOT)})."]
        return "\n".join(lines) + "\n"
    hours = gpu_hours(plan, costs)
    lines += [f"Rates measured by `bench/bench_costs.py` on: {costs['machine']}; device: {costs['device']} "
              f"(LSQML: {costs['lsqml_device']}), one thread. Fixed start-up per TensorFlow job: "
              f"{costs['fixed_s']:.1f} s. Training: PINN {costs['train_pinn_per_s']:.1f} groups/s, Baseline "
              f"{costs['train_baseline_per_s']:.1f} patterns/s; inference PINN {costs['infer_pinn_groups_per_s']:.1f}, "
              f"Baseline {costs['infer_baseline_groups_per_s']:.1f} groups/s; LSQML "
              f"{costs['lsqml_frames_per_s']:.1f} frames·epochs/s. Training hours are for all configured epochs "
              "(early stopping can end sooner).", "",
              "| GPU rule | jobs | job-hours |", "|---|---:|---:|"]
    lines += [f"| {rule} | {n} | {h:,.2f} |" for rule, (n, h) in hours.items()]
    lines.append(f"| **total** | **{sum(n for n, _ in hours.values())}** | **{sum(h for _, h in hours.values()):,.2f}** |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/study_fly64.yaml")
    ap.add_argument("--out", default="results/plan")
    ap.add_argument("--costs", help="measured rates (default: bench/costs/<config name>.json)")
    ap.add_argument("--gpus", type=int, default=1, help="GPU jobs at once (for the peak disk)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        text, seconds = dry_run(args.configfile, work)
        graph = subprocess.run(
            SNAKEMAKE + ["--rulegraph", "--configfile", str(Path(args.configfile).resolve()), "-d", work],
            capture_output=True, text=True, check=True,
        ).stdout
    import yaml

    from ptychostudy.config import build_plan

    plan = build_plan(yaml.safe_load(Path(args.configfile).read_text()))
    costs = Path(args.costs) if args.costs else ROOT / "bench" / "costs" / f"{Path(args.configfile).stem}.json"
    md = table(count_jobs(text), seconds, args.configfile) + budget_tables(plan, args.configfile, costs, args.gpus)
    (out / "plan.md").write_text(md)
    dot_src = graph[graph.index("digraph"):]
    (out / "rulegraph.dot").write_text(dot_src)
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg", "-o", str(out / "rulegraph.svg")], input=dot_src, text=True, check=True)
    print(md)
    print(f"rule graph: {out / ('rulegraph.svg' if shutil.which('dot') else 'rulegraph.dot')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
