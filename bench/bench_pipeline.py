"""Chunked inference: job memory, per-job overhead, end-to-end throughput, merge memory.

    .venv/bin/python bench/bench_pipeline.py        # writes bench/pipeline.md (about 12 min)
    .venv/bin/python bench/bench_pipeline.py --overhead-only 2 --chunk-sizes 1024,4096
                                                    # 8192 groups; writes bench/pipeline_x2.md
    .venv/bin/python bench/bench_pipeline.py --memory-only
                                                    # table 1 only; writes bench/pipeline_memory.md

Everything runs the library functions the workflow's jobs run, each job in a fresh Python
process (as Snakemake starts it), with its peak RSS read from ``/proc/self/status`` (VmHWM).
The data are synthetic Phase C splits at N=64 (random amplitudes on a square raster; the
network's cost does not depend on the values) and an untrained PtychoPINN of the default
width (``pinn.filters`` of config/config.yaml): inference time does not depend on its weights.

1. Memory against split size: splits of 1x, 4x and 16x the groups (K-choose-C oversampling of
   one raster) at a fixed chunk size; peak RSS of one ``infer_chunk`` job and of
   ``merge_chunks`` (canvas + one chunk) for each. The merge is the default PINN merge: probe
   window and 5 rounds of per-group phase reconciliation (each a further pass over the files).
2. Overhead: a split's chunk jobs, one after another with one thread each (the rule's
   ``threads``), against one in-process pass over the same groups with one thread, at several
   chunk sizes; per-job fixed cost = job wall time − its prediction time.
3. End to end: grouping, sharding, all chunk jobs (two at a time, like ``--cores 2``) and the
   merge, in patterns per second.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import yaml

from common import ROOT, WORK, machine, run_measured

sys.path.insert(0, str(ROOT / "src"))

from bench_shards import make_split  # noqa: E402

from ptychostudy import io  # noqa: E402
from ptychostudy.shards import ShardSource, write_groups  # noqa: E402

N = 64
#: positions per side of the raster of the memory splits (1024 positions) and of the overhead split
MEM_SIDE, RUN_SIDE = 32, 64
MEM_CHUNK = 256
CHUNK_SIZES = (256, 1024, 4096)
SEEDS = {"grouping": 123, "subsampling": 456}
FILTERS = int(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["pinn"]["filters"])

MAKE_MODEL = """
import sys
from ptychostudy.runtime import configure_tensorflow
configure_tensorflow(1)
import numpy as np
from ptychostudy import io
from ptychostudy.models.physics import canvas_pad
from ptychostudy.models.pinn import NetConfig, build_pinn
g = io.load_npz(sys.argv[1])
pad = canvas_pad(float(np.abs(g["coords_relative"]).max()), int(sys.argv[3]))
model = build_pinn(NetConfig(int(sys.argv[3]), 4, int(sys.argv[4]), pad=pad), np.ones((int(sys.argv[3]),) * 2, np.complex64))
model.save(sys.argv[2])
_out.update(parameters=int(model.count_params()))
"""

JOB = """
import sys, time
from ptychostudy.runtime import configure_tensorflow
configure_tensorflow(1)
from ptychostudy.models.infer import infer_chunk_file
s = infer_chunk_file(sys.argv[1], sys.argv[2], sys.argv[3], 64)
_out.update(predict_s=s["wall_time_s"], n_groups=s["n_groups"])
"""

IN_PROCESS = """
import sys, time, glob
from ptychostudy.runtime import configure_tensorflow
configure_tensorflow(1)
import keras
from ptychostudy.models.infer import Predictor
from ptychostudy.shards import load_chunk
paths = sorted(glob.glob(sys.argv[2] + "/chunk_*.npz"))
model = keras.models.load_model(sys.argv[1])
pred = Predictor(model, 64)
t = time.perf_counter()
n = 0
for i, p in enumerate(paths):
    c = load_chunk(p)
    d, rel = c["diffraction"], c["coords_relative"]
    if i == 0:
        pred(d[:1], rel[:1])  # trace, as each job does
    n += pred(d, rel).shape[0]
_out.update(pass_s=time.perf_counter() - t, n_groups=n)
"""

MERGE = """
import sys, glob
from ptychostudy.stitch import write_merged
paths = sorted(glob.glob(sys.argv[1] + "/chunk_*.npz"))
# the default merge of a PINN split: probe window, 5 rounds of phase reconciliation
info = write_merged(paths, sys.argv[2], sys.argv[3], {"window": "probe"}, phase_rounds=5)
_out.update(n_chunks=info["n_chunks"], object_shape=list(info["object_shape"]))
"""


def timed(code: str, *args: str) -> dict:
    t = time.perf_counter()
    out = run_measured(code, *args)
    out["wall_s"] = time.perf_counter() - t
    return out


def group_split(d, n_groups) -> float:
    t = time.perf_counter()
    write_groups(d / "split.npz", d / "groups.npz", d / "overlap.json", "dense", 2, 7, n_groups, SEEDS)
    return time.perf_counter() - t


def shard(d, chunk_size: int, only_first: bool = False) -> tuple[list, float]:
    out = d / f"chunks_{chunk_size}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t = time.perf_counter()
    src = ShardSource(d / "split.npz", d / "groups.npz", chunk_size)
    paths = []
    for i in range(1 if only_first else src.n_chunks):
        paths.append(out / f"chunk_{i:04d}.npz")
        src.write_chunk(i, paths[-1])
    return paths, time.perf_counter() - t


def fake_predictions(d, chunk_size: int) -> tuple:
    """Inference files of every chunk of a split (random patches at the groups' true positions)."""
    g = io.load_npz(d / "groups.npz")
    out = d / "pred"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    rng = np.random.default_rng(0)
    n = len(g["members"])
    for i, start in enumerate(range(0, n, chunk_size)):
        sl = slice(start, min(start + chunk_size, n))
        b = sl.stop - sl.start
        patches = (rng.random((b, N, N, 4), dtype=np.float32) + 1j * rng.random((b, N, N, 4), dtype=np.float32))
        pos = g["coords_center"][sl, None, :] + g["coords_relative"][sl]
        io.save_npz(out / f"chunk_{i:04d}.npz", patches=patches.astype(np.complex64), positions=pos,
                    group_index=np.arange(sl.start, sl.stop), member_index=g["members"][sl],
                    wall_time_s=np.float64(0), N=np.int64(N), chunk=np.int64(i))
    return out, i + 1, sum(p.stat().st_size for p in out.iterdir()) / 2**20


def memory_rows(model) -> list[dict]:
    d = WORK / "pipeline_mem"
    d.mkdir(parents=True, exist_ok=True)
    n_pos = make_split(d / "split.npz", MEM_SIDE)
    rows = []
    for factor in (1, 4, 16):
        group_split(d, factor * n_pos)
        paths, _ = shard(d, MEM_CHUNK, only_first=True)
        job = timed(JOB, str(model), str(paths[0]), str(d / "pred_job.npz"))
        pred_dir, n_chunks, pred_mib = fake_predictions(d, MEM_CHUNK)
        merge = timed(MERGE, str(pred_dir), str(d / "split.npz"), str(d / "merged.npz"))
        rows.append({"factor": factor, "groups": factor * n_pos, "chunks": n_chunks, "pred_mib": pred_mib,
                     "job_rss": job["peak_rss_mib"], "merge_rss": merge["peak_rss_mib"],
                     "merge_s": merge["wall_s"], "object": merge["object_shape"]})
        print(rows[-1], flush=True)
    return rows


def overhead_rows(model, factor: int = 1, chunk_sizes=CHUNK_SIZES) -> list[dict]:
    d = WORK / "pipeline_run"
    d.mkdir(parents=True, exist_ok=True)
    n_pos = make_split(d / "split.npz", RUN_SIDE)
    t_group = group_split(d, "all" if factor == 1 else factor * n_pos)
    n_pos *= factor  # groups
    rows = []
    for chunk_size in chunk_sizes:
        paths, t_shard = shard(d, chunk_size)
        pred = d / f"pred_{chunk_size}"
        shutil.rmtree(pred, ignore_errors=True)
        pred.mkdir()
        jobs = [timed(JOB, str(model), str(p), str(pred / p.name)) for p in paths]
        inproc = timed(IN_PROCESS, str(model), str(paths[0].parent))
        # end to end: the same jobs two at a time (two 1-thread jobs on two cores), then the merge
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda p: run_measured(JOB, str(model), str(p), str(pred / p.name)), paths))
        t_jobs2 = time.perf_counter() - t
        merge = timed(MERGE, str(pred), str(d / "split.npz"), str(d / "merged.npz"))
        total_jobs = sum(j["wall_s"] for j in jobs)
        fixed = [j["wall_s"] - j["predict_s"] for j in jobs]
        e2e = t_group + t_shard + t_jobs2 + merge["wall_s"]
        rows.append({"chunk_size": chunk_size, "groups": n_pos, "patterns": 4 * n_pos, "jobs": len(jobs),
                     "jobs_s": total_jobs, "inproc_s": inproc["wall_s"], "inproc_pass_s": inproc["pass_s"],
                     "ratio": total_jobs / inproc["wall_s"], "fixed_s": float(np.median(fixed)),
                     "job_rss": max(j["peak_rss_mib"] for j in jobs),
                     "predict_rate": 4 * n_pos / sum(j["predict_s"] for j in jobs),
                     "group_s": t_group, "shard_s": t_shard, "jobs2_s": t_jobs2, "merge_s": merge["wall_s"],
                     "e2e_s": e2e, "e2e_rate": 4 * n_pos / e2e})
        print(rows[-1], flush=True)
    return rows


def write_report(params: int, mem: list[dict], run: list[dict], page: str = "pipeline.md") -> None:
    lines = [
        "# Chunked inference: memory, overhead, end-to-end throughput",
        "",
        f"Machine: {machine()}; TensorFlow on the CPU, one thread per job.",
        f"Command: `.venv/bin/python bench/bench_pipeline.py`. N={N}, gridsize 2 (C=4), K=7, an untrained "
        f"PtychoPINN of {params:,} parameters (filters {FILTERS}), predict batch 64.",
        "",
    ]
    if mem:
        base = mem[0]
        lines += [
            f"## Peak memory against split size (chunk size {MEM_CHUNK})",
            "",
            "| split | groups | chunks | `infer_chunk` job peak RSS (MiB) | vs 1x | predictions on disk (MiB) "
            "| `merge_chunks` peak RSS (MiB) | vs 1x | merge time (s) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in mem:
        lines.append(f"| {r['factor']}x | {r['groups']} | {r['chunks']} | {r['job_rss']:.0f} | "
                     f"{r['job_rss'] / base['job_rss']:.3f} | {r['pred_mib']:.0f} | {r['merge_rss']:.0f} | "
                     f"{r['merge_rss'] / base['merge_rss']:.3f} | {r['merge_s']:.1f} |")
    if mem:
        lines += [
            "",
            f"Groups beyond one per position are K-choose-C oversamples of the same {mem[0]['groups']}-position "
            f"raster (object {mem[0]['object'][0]}×{mem[0]['object'][1]} pixels): the merge canvas is the same, "
            "so any growth would come from the number of chunks or groups.",
        ]
    if not run:
        (WORK.parent / page).write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    lines += [
        "",
        f"## Chunk jobs against one in-process pass ({run[0]['groups']} groups, {run[0]['patterns']} patterns)",
        "",
        "Jobs run one after another, one thread each; the in-process pass loads the model once and "
        "predicts every chunk in one process (its wall time includes its own start).",
        "",
        "| chunk size | jobs | all jobs (s) | one process (s) | ratio | fixed cost per job (s) | "
        "prediction alone (patterns/s) | job peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run:
        lines.append(f"| {r['chunk_size']} | {r['jobs']} | {r['jobs_s']:.1f} | {r['inproc_s']:.1f} | "
                     f"{r['ratio']:.2f} | {r['fixed_s']:.2f} | {r['predict_rate']:.0f} | {r['job_rss']:.0f} |")
    lines += [
        "",
        "## End to end (grouping, sharding, chunk jobs two at a time, merge)",
        "",
        "| chunk size | grouping (s) | sharding (s) | chunk jobs (s) | merge (s) | total (s) | patterns/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run:
        lines.append(f"| {r['chunk_size']} | {r['group_s']:.1f} | {r['shard_s']:.1f} | {r['jobs2_s']:.1f} | "
                     f"{r['merge_s']:.1f} | {r['e2e_s']:.1f} | {r['e2e_rate']:.0f} |")
    (WORK.parent / page).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overhead-only", type=int, metavar="FACTOR", default=0,
                    help="only the overhead and end-to-end tables, on FACTOR x the groups of the "
                         f"{RUN_SIDE**2}-position split (oversampled), written to pipeline_x<FACTOR>.md")
    ap.add_argument("--chunk-sizes", default=",".join(map(str, CHUNK_SIZES)), help="comma-separated chunk sizes")
    ap.add_argument("--memory-only", action="store_true", help="only the memory table, to pipeline_memory.md")
    args = ap.parse_args()
    chunk_sizes = tuple(int(c) for c in args.chunk_sizes.split(","))
    d = WORK / "pipeline_run"
    d.mkdir(parents=True, exist_ok=True)
    make_split(d / "split.npz", RUN_SIDE)
    group_split(d, "all")
    model = WORK / "pipeline_pinn.keras"
    params = run_measured(MAKE_MODEL, str(d / "groups.npz"), str(model), str(N), str(FILTERS))["parameters"]
    if args.overhead_only:
        run = overhead_rows(model, args.overhead_only, chunk_sizes)
        write_report(params, [], run, f"pipeline_x{args.overhead_only}.md")
        return
    mem = memory_rows(model)
    if args.memory_only:
        write_report(params, mem, [], "pipeline_memory.md")
        return
    run = overhead_rows(model, 1, chunk_sizes)
    write_report(params, mem, run)


if __name__ == "__main__":
    main()
