"""Peak memory of the shard writer for a split 1x and 8x larger at the same chunk size.

    .venv/bin/python bench/bench_shards.py        # writes bench/shards.md

A synthetic Phase C split (random amplitudes, N=64) is grouped (C=4, K=7, one group per
position) and sharded by `ShardSource.write_chunk` in a fresh process per size; the process's
peak RSS is what a `shard_chunk` job needs. The writer memory-maps the diffraction, so the
peak should follow the chunk size, not the split.
"""

from __future__ import annotations

import sys

import numpy as np

from common import WORK, machine, run_measured

sys.path.insert(0, str(WORK.parent.parent / "src"))

from ptychostudy import io  # noqa: E402
from ptychostudy.shards import write_groups  # noqa: E402

N, CHUNK = 64, 256


def make_split(path, side: int) -> int:
    """A square raster of side×side positions with random amplitudes, in the Phase C layout."""
    step = 7.0
    g = 40 + np.arange(side) * step
    xy = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float64)
    size = int(g[-1] + 48)
    rng = np.random.default_rng(0)
    diff = rng.random((len(xy), N, N), dtype=np.float32)
    io.save_npz(path, diffraction=diff, xcoords=xy[:, 0], ycoords=xy[:, 1],
                probeGuess=np.ones((N, N), np.complex64), objectGuess=np.ones((size, size), np.complex64),
                scan_index=np.arange(len(xy)), lattice=np.zeros(len(xy), np.int64),
                view_names=np.array(["dense"]), dose=np.int64(1000), N=np.int64(N),
                probe_diameter=np.float64(24.0))
    return len(xy)


SHARD = """
import sys, time
from ptychostudy.shards import ShardSource
src = ShardSource(sys.argv[1], sys.argv[2], int(sys.argv[3]))
t = time.perf_counter()
ids = range(src.n_chunks) if sys.argv[5] == "all" else [0]
for i in ids:
    src.write_chunk(i, sys.argv[4] + f"/chunk_{i:04d}.npz")
_out.update(seconds=time.perf_counter() - t, n_chunks=src.n_chunks, n_groups=src.n_groups)
"""


def main() -> None:
    rows = []
    for factor, side in ((1, 32), (8, 91)):
        d = WORK / f"shards_{factor}x"
        (d / "chunks").mkdir(parents=True, exist_ok=True)
        n = make_split(d / "split.npz", side)
        write_groups(d / "split.npz", d / "groups.npz", d / "overlap.json", "dense", 2, 7, "all",
                     {"grouping": 123, "subsampling": 456})
        args = (str(d / "split.npz"), str(d / "groups.npz"), str(CHUNK), str(d / "chunks"))
        job = run_measured(SHARD, *args, "one")
        loop = run_measured(SHARD, *args, "all")
        split_mib = n * N * N * 4 / 2**20
        rows.append((factor, n, split_mib, job, loop))
        print(factor, n, job, loop)
    base = rows[0][3]["peak_rss_mib"]
    lines = [
        "# Shard writer memory",
        "",
        f"Machine: {machine()}",
        f"Command: `.venv/bin/python bench/bench_shards.py`; N={N}, C=4, chunk_size={CHUNK}.",
        "",
        "| split | positions = groups | split diffraction (MiB) | chunks | one `shard_chunk` job: peak RSS (MiB) | vs 1x "
        "| all chunks in one process: peak RSS (MiB) | time (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for factor, n, split_mib, job, loop in rows:
        lines.append(f"| {factor}x | {n} | {split_mib:.0f} | {job['n_chunks']} | {job['peak_rss_mib']:.0f} | "
                     f"{job['peak_rss_mib'] / base:.2f} | {loop['peak_rss_mib']:.0f} | {loop['seconds']:.1f} |")
    lines.append("")
    lines.append("One chunk of 256 groups holds 256×64×64×4 float32 amplitudes (16 MiB) plus the same "
                 "number of complex64 ground-truth patches (32 MiB).")
    (WORK.parent / "shards.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
