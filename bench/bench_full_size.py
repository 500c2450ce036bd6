"""The study at its real size on one machine: one dose × the dense view, through every rule.

    .venv/bin/python bench/bench_full_size.py            # run, then write bench/full_size.md
    .venv/bin/python bench/bench_full_size.py --report   # only (re)write the page from a finished run

The config is ``config/study_fly64.yaml`` with only these keys changed (written to
``<work>/config.yaml``, so the run is reproducible from it):

- one dose (1e5), the dense view, one replicate (seed 7);
- ``training.epochs: 1`` (patience 0) and ``ptychi.epochs: 5``: the caps that make it fit a
  2-core CPU in about an hour. Epochs change how long a job runs, not what it holds: every
  training epoch streams the same chunks, and LSQML holds the same patterns at any epoch.

Everything else is the study's: N = 128, gridsize 2, a 72 × 72 raster per split (5,184
positions), 8,192 training groups and every validation and test group, chunks of 4,096 groups,
all three arms, filters 44, every rule (Phase C to the summary). Snakemake runs it in
``<work>`` (default ``bench/_work/full_size``) with the workflow profile, ``--cores`` and a
``mem_mb`` budget, so the scheduler itself keeps the jobs' requests within the machine.

The page records, per job: wall time (Snakemake's benchmark file) and the exact peak RSS the job
logged at exit (``ptychostudy.resources.job_peak_mb``; the benchmark file's sampled figure
beside it), against the memory the job asked for (``ptychostudy.resources.mem_mb``, the
workflow's own request). Then the peaks of the same full chunk in the train and the test split,
which differ in size (a job holding its split would peak higher on the larger one); the disk
each phase left, against the estimate ``make plan`` prints (``tools/plan.py:disk_estimate``);
and the workflow's wall time against the sum of its job times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

from common import machine  # noqa: E402
from plan import PHASES, disk_estimate  # noqa: E402
from ptychostudy.config import build_plan  # noqa: E402
from ptychostudy.resources import benchmark_job, benchmark_log, job_peak_mb, logged_peak_mb, mem_mb  # noqa: E402
from ptychostudy.summary import markdown_frame  # noqa: E402

#: the keys changed from config/study_fly64.yaml (see the docstring)
OVERRIDES = {
    "doses": [100000],
    "views": {"dense": {"overlap": 0.7}},
    "replicates": [7],
    "training": {"epochs": 1, "patience": 0},
    "ptychi": {"epochs": 5},
}


def bench_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config/study_fly64.yaml").read_text())
    for key, value in OVERRIDES.items():
        cfg[key] = {**cfg[key], **value} if key in ("training", "ptychi") else value
    return cfg


def run(work: Path, cores: int, mem: int) -> float:
    work.mkdir(parents=True, exist_ok=True)
    configfile = work / "config.yaml"
    configfile.write_text(yaml.safe_dump(bench_config(), sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--configfile", str(configfile), "--cores", str(cores),
           "--resources", f"gpu={cores}", f"mem_mb={mem}"]
    print(" ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    (work / "wall.json").write_text(json.dumps({"wall_s": wall, "cores": cores, "mem_mb": mem}))
    return wall


def jobs_table(work: Path, plan) -> pd.DataFrame:
    rows = []
    for path in sorted((work / "benchmarks").rglob("*.tsv")):
        rule, view, split = benchmark_job(path)
        b = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"rule": rule, "job": path.relative_to(work / "benchmarks").with_suffix("").as_posix(),
                     "wall_s": float(b["s"]), "peak_mb": job_peak_mb(path),
                     "sampled_mb": float(b["max_rss"]) * 2**20 / 1e6,
                     "request_mb": mem_mb(plan, rule, view, "train" if rule.startswith("train_") else split),
                     "exact": logged_peak_mb(benchmark_log(path)) is not None})
    df = pd.DataFrame(rows)
    df["peak_over_request"] = df.peak_mb / df.request_mb
    return df


def chunk_or_split(jobs: pd.DataFrame, plan) -> pd.DataFrame:
    """Peaks of the jobs that handle a chunk (or stream a split) in the test and the train split,
    which differ in size (5,184 and 8,192 groups at the study's size): equal peaks show the
    memory follows the chunk, not the split."""
    rows = []
    v = plan.views["dense"]
    names = {"d": f"dose_{plan.doses[0]}", "s": plan.replicates[0]}
    peak = jobs.set_index("job")["peak_mb"]
    for label, test_job, train_job in [
        ("shard_chunk, a full chunk", "phase_d/{d}/dense/test/chunk_0000", "phase_d/{d}/dense/train/chunk_0000"),
        ("infer_chunk PINN, a full chunk", "inference/{d}/dense/test/pinn/seed_{s}/chunk_0000",
         "inference/{d}/dense/train/pinn/seed_{s}/chunk_0000"),
        ("infer_chunk Baseline, a full chunk", "inference/{d}/dense/test/baseline/seed_{s}/chunk_0000",
         "inference/{d}/dense/train/baseline/seed_{s}/chunk_0000"),
        ("merge_chunks PINN, the whole split", "inference/{d}/dense/test/pinn/seed_{s}/merge",
         "inference/{d}/dense/train/pinn/seed_{s}/merge"),
        ("merge_chunks Baseline, the whole split", "inference/{d}/dense/test/baseline/seed_{s}/merge",
         "inference/{d}/dense/train/baseline/seed_{s}/merge"),
    ]:
        a, b = test_job.format(**names), train_job.format(**names)
        if a in peak and b in peak:
            rows.append({"job": label, "test_peak_mb": peak[a], "train_peak_mb": peak[b],
                         "train_over_test": peak[b] / peak[a],
                         "split_predictions_mb": v.n_groups("train") * plan.C * plan.N**2 * 8 / 1e6})
    return pd.DataFrame(rows)


def disk_table(work: Path, plan, keep_predictions: bool) -> pd.DataFrame:
    costs = ROOT / "bench/costs/study_fly64.json"  # the networks' parameter counts, as `make plan` uses them
    params = json.loads(costs.read_text()) if costs.exists() else {}
    est = disk_estimate(plan, {m: params[f"{m}_parameters"] for m in plan.nn_models if f"{m}_parameters" in params})
    rows = []
    for phase in PHASES:
        folder = work / "results" / phase
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix != ".png") if folder.exists() else 0
        expected = est[phase] - (est["predictions"] if phase == "inference" and not keep_predictions else 0)
        rows.append({"phase": phase, "measured_gb": size / 1e9, "estimate_gb": expected / 1e9})
    return pd.DataFrame(rows)


def changed_since(cfg: dict) -> list[str]:
    """Keys where the run's config differs from what the study config gives today."""
    now = bench_config()
    out = []
    for key in sorted(set(cfg) | set(now)):
        a, b = cfg.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k}: {a.get(k)!r} in the run, {b.get(k)!r} now" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key}: {a!r} in the run, {b!r} now")
    return out


def report(work: Path, out: Path) -> None:
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    changed = changed_since(cfg)
    plan = build_plan(cfg)
    jobs = jobs_table(work, plan)
    disk = disk_table(work, plan, cfg.get("inference", {}).get("keep_predictions", True))
    run_info = json.loads((work / "wall.json").read_text())
    wall = run_info["wall_s"]
    per_rule = jobs.groupby("rule").agg(jobs=("job", "size"), wall_s_sum=("wall_s", "sum"), wall_s_max=("wall_s", "max"),
                                        peak_mb_max=("peak_mb", "max"), request_mb=("request_mb", "max"),
                                        peak_over_request_max=("peak_over_request", "max")).reset_index()
    per_rule = per_rule.sort_values("wall_s_sum", ascending=False)
    over = jobs[jobs.peak_over_request >= 1]
    per_split = chunk_or_split(jobs, plan)
    n_train, n_test = plan.views["dense"].n_groups("train"), plan.views["dense"].n_groups("test")
    text = [
        "# The study at its real size: one dose × the dense view, every rule",
        "",
        f"Machine: {machine()}; no GPU (TensorFlow and torch on the CPU).",
        "Command: `.venv/bin/python bench/bench_full_size.py` (run and page; `--report` rewrites the page).",
        "",
        "Config: `config/study_fly64.yaml` with dose 1e5 only, the dense view only, replicate 7, "
        "`training.epochs: 1` and `ptychi.epochs: 5` (the run writes the config it used to `<work>/config.yaml`). "
        f"At the study's size: N = {plan.N}, C = {plan.C}, {plan.views['dense'].n_positions('test')} positions per split, "
        f"{plan.views['dense'].n_groups('train')} training groups, {plan.views['dense'].n_groups('test')} test groups, "
        f"chunks of {plan.chunk_size} groups, objects of {plan.object_size}² px.",
        "",
        *([f"The study config changed after this run: {'; '.join(changed)}."] if changed else []),
        "",
        f"**Workflow wall time: {wall / 60:.1f} min** with `--cores {run_info['cores']}` and a "
        f"`mem_mb` budget of {run_info['mem_mb']} MB; "
        f"sum of job times {jobs.wall_s.sum() / 60:.1f} min ({len(jobs)} jobs).",
        "",
        f"**Jobs over their memory request: {len(over)}** (largest peak/request "
        f"{jobs.peak_over_request.max():.2f}, {jobs.loc[jobs.peak_over_request.idxmax(), 'job']}); "
        f"{int(jobs.exact.sum())} of {len(jobs)} peaks are exact (logged by the job at exit).",
        "",
        "## Per rule",
        "",
        "Peak: the job's peak resident memory (`VmHWM`) as it logged it at exit (MB = 10⁶ bytes); "
        "`sampled_mb` is what Snakemake's benchmark file saw (sampled every 30 s after a job's "
        "first 30 s: it misses short peaks). The request is the rule's `mem_mb` for this job "
        "(`ptychostudy.resources.mem_mb`).",
        "",
        markdown_frame(per_rule, right_from=1),
        "",
        "## A chunk, not a split",
        "",
        f"The train split holds {n_train:,} groups, the test split {n_test:,}: a job whose memory "
        f"followed its split would peak {n_train / n_test:.1f}× higher on the train split. "
        "`split_predictions_mb`: the train split's predicted patches, which no job holds.",
        "",
        markdown_frame(per_split, right_from=1),
        "",
        "## Per job",
        "",
        markdown_frame(jobs.drop(columns="rule"), right_from=1),
        "",
        "## Disk",
        "",
        "Bytes left in each phase's folder at the end (figures not counted), against the estimate "
        "of `make plan` for the same config (`tools/plan.py:disk_estimate`; inference without the "
        "chunk predictions, which `inference.keep_predictions: false` deletes at each merge; the "
        "saved models as float32 weights, without the optimiser state a `.keras` file also holds). "
        "The estimate leaves out Phase G's aligned crops.",
        "",
        markdown_frame(disk, right_from=1),
        "",
    ]
    out.write_text("\n".join(text))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / "bench/_work/full_size"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--mem-mb", type=int, default=22000, help="memory the scheduler may hand out (MB)")
    ap.add_argument("--out", default=str(ROOT / "bench/full_size.md"))
    ap.add_argument("--report", action="store_true", help="only write the page from a finished run")
    args = ap.parse_args()
    work = Path(args.work)
    if not args.report:
        run(work, args.cores, args.mem_mb)
    report(work, Path(args.out))


if __name__ == "__main__":
    main()
