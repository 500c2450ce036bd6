"""`snakemake -n` planning time of the full study, with 3x and 10x its groups, and in fine chunks.

    .venv/bin/python bench/bench_plan.py        # writes bench/plan_scaling.md (about 2 min)

The larger studies keep every other key of config/study_fly64.yaml and ask for 3x or 10x the
groups of every view and split (the test splits' one-group-per-position becomes that many
K-choose-C oversamples), so the number of chunks, and of chunk jobs, grows with them. The
planning time is one dry run (``--forceall``, nothing executes, no data exists) in a fresh
process, as a user would type it.
"""

from __future__ import annotations

import sys

import yaml

from common import ROOT, WORK, machine

sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from plan import count_jobs, dry_run  # noqa: E402

from ptychostudy.config import build_plan  # noqa: E402

STUDY = ROOT / "config" / "study_fly64.yaml"
#: (groups factor, chunk_size or None for the study's): the study, 3x and 10x its groups, and the
#: study cut into fine chunks of 256 groups (hundreds of GPU jobs)
CASES = ((1, None), (3, None), (10, None), (1, 256), (10, 256))


def scaled_config(factor: int, chunk_size: int | None = None) -> dict:
    """study_fly64 with ``factor``× the groups of every view and split (and another chunk size)."""
    cfg = yaml.safe_load(STUDY.read_text())
    if chunk_size:
        cfg["chunk_size"] = chunk_size
    if factor == 1:
        return cfg
    plan = build_plan(yaml.safe_load(STUDY.read_text()))
    for name, view in plan.views.items():
        cfg["views"][name]["n_groups"] = {s: factor * view.n_groups(s) for s in ("train", "test")}
    return cfg


def main() -> None:
    rows = []
    study_chunk = yaml.safe_load(STUDY.read_text())["chunk_size"]
    for factor, chunk_size in CASES:
        name = f"study_x{factor}_c{chunk_size or study_chunk}"
        path = WORK / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(scaled_config(factor, chunk_size)))
        text, seconds = dry_run(str(path), str(WORK / f"plan_{name}"))
        counts = count_jobs(text)
        jobs = sum(c["jobs"] for c in counts.values())
        rows.append({"factor": factor, "chunk_size": chunk_size or study_chunk, "jobs": jobs,
                     "chunks": counts["shard_chunk"]["jobs"],
                     "gpu": sum(c["gpu"] for c in counts.values()), "seconds": seconds})
        print(rows[-1], flush=True)
    lines = [
        "# Planning time against study size",
        "",
        f"Machine: {machine()}",
        "Command: `.venv/bin/python bench/bench_plan.py`; `snakemake -n --forceall` on "
        "config/study_fly64.yaml with every view's and split's groups multiplied by the factor.",
        "",
        "| groups | chunk size | jobs | chunk files | GPU jobs | `snakemake -n` (s) | s per 1,000 jobs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['factor']}x | {r['chunk_size']} | {r['jobs']:,} | {r['chunks']:,} | {r['gpu']:,} | {r['seconds']:.1f} | "
                     f"{1000 * r['seconds'] / r['jobs']:.1f} |")
    (WORK.parent / "plan_scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
