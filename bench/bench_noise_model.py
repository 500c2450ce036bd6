"""Which likelihood LSQML should use: Gaussian or Poisson noise model, chosen on the validation split.

    .venv/bin/python bench/bench_noise_model.py --data bench/_work/data/results   # writes bench/noise_model.md

On the validation split of a study's data (Phase C and D, as `bench_learning.py` prepares them),
for each dose and view: LSQML (``lsqml.reconstruct_split``, the workflow's call) with
``noise_model`` gaussian and poisson at the config's epochs and batch size, three seeds each,
scored as Phase G scores (offset-free phase SSIM, amplitude SSIM), with the wall time. Also
records whether the result depends on the seed (the reason LSQML runs once per cell with the
Gaussian model and once per replicate with the Poisson one). Each run is its own process
(ptychi sets torch's global state), one torch thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine  # noqa: E402

RUN = """
import json, sys
from ptychostudy.runtime import configure_torch
configure_torch(1)
import numpy as np
from ptychostudy import metrics as M
from ptychostudy.compare import view_region
from ptychostudy.io import load_npz
from ptychostudy.lsqml import reconstruct_split
phase_c, groups, epochs, batch, model, seed = sys.argv[1:7]
res = reconstruct_split(phase_c, groups, epochs=int(epochs), batch_size=int(batch), noise_model=model, seed=int(seed))
c = load_npz(phase_c, only=("objectGuess", "xcoords", "ycoords"))
g = load_npz(groups, only=("view_index",))
truth = c["objectGuess"]
values, _ = M.evaluate(M.align(res["object"], truth, view_region(c, g, truth.shape)))
print(json.dumps({"phase_ssim": values["phase"]["ssim"], "amplitude_ssim": values["amplitude"]["ssim"],
                  "wall_s": res["wall_time_s"], "object": None}))
np.save(sys.argv[7], res["object"])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="bench/_work/data/results")
    ap.add_argument("--configfile", default="config/config.yaml")
    ap.add_argument("--doses", default="1000,10000,100000")
    ap.add_argument("--seeds", default="7,11,19")
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.configfile).read_text())
    epochs, batch = cfg["ptychi"]["epochs"], cfg["ptychi"]["batch_size"]
    data = Path(args.data)
    work = ROOT / "bench" / "_work" / "noise_model"
    work.mkdir(parents=True, exist_ok=True)
    lines = ["# LSQML noise model, chosen on the validation split", "",
             f"Machine: {machine()}. Command: `bench/bench_noise_model.py --data {args.data}`; config "
             f"`{args.configfile}` (LSQML {epochs} epochs, batch {batch}, one torch thread).", "",
             "Offset-free phase SSIM and amplitude SSIM of the validation split's reconstruction (Phase G's "
             "alignment); mean over seeds, and the largest pixel difference between seeds' objects.", "",
             "| dose | view | noise model | phase SSIM | amplitude SSIM | wall s | seeds | max diff between seeds |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for dose in map(int, args.doses.split(",")):
        for view in cfg["views"]:
            phase_c = data / f"phase_c/dose_{dose}/validation.npz"
            groups = data / f"phase_d/dose_{dose}/{view}/validation/groups.npz"
            for model in ("gaussian", "poisson"):
                runs, objects = [], []
                for seed in args.seeds.split(","):
                    out = work / f"{dose}_{view}_{model}_{seed}.npy"
                    t0 = time.time()
                    res = subprocess.run([sys.executable, "-c", RUN, str(phase_c), str(groups), str(epochs),
                                          str(batch), model, seed, str(out)], capture_output=True, text=True,
                                         env={"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"),
                                              "PATH": "/usr/bin:/bin"})
                    if res.returncode:
                        raise SystemExit(res.stderr[-3000:])
                    runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
                    objects.append(np.load(out))
                    print(dose, view, model, seed, runs[-1], f"{time.time() - t0:.0f} s", flush=True)
                spread = max(float(np.abs(o - objects[0]).max()) for o in objects)
                lines.append(f"| {dose} | {view} | {model} | {np.mean([r['phase_ssim'] for r in runs]):.3f} | "
                             f"{np.mean([r['amplitude_ssim'] for r in runs]):.3f} | "
                             f"{np.mean([r['wall_s'] for r in runs]):.1f} | {len(runs)} | {spread:.2g} |")
    out = ROOT / "bench" / "noise_model.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
