"""Per-unit costs of the GPU rules for a config, measured on this machine: what `make plan` uses.

    .venv/bin/python bench/bench_costs.py --configfile config/study_fly64.yaml   # a few minutes on a CPU

Each measurement runs in a fresh process, as a Snakemake job does, on the device that job
would get (:func:`ptychostudy.devices.claim_gpu`: one GPU, or the CPU with one thread):

- **fixed cost of a TensorFlow job**: interpreter start, ``import tensorflow``, building the model
  (what every ``infer_chunk`` and training job pays before its first useful op);
- **training**: one step of the config's PINN and Baseline (width, N, C, batch size), median of
  a few, as groups/s (PINN) and patterns/s (Baseline);
- **inference**: ``Predictor`` on 4 batches of the config's inference batch size, groups/s;
- **LSQML**: ``lsqml.reconstruct`` on a small raster at the config's N, probe, dense step
  and ptychi batch size for a few epochs, frames·epochs/s (set-up excluded), in its own process.

Writes ``bench/costs/<config name>.json`` (read by ``tools/plan.py``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import ROOT, machine, run_measured

sys.path.insert(0, str(ROOT / "src"))

#: both jobs: the measured settings (argv[1], JSON) and the config's probe
CONFIG_AND_PROBE = """
cfg = json.loads(sys.argv[1])
import yaml
from ptychostudy.config import build_plan, load_probe
_plan = build_plan(yaml.safe_load(open(cfg["configfile"])))
probe = load_probe(_plan.probe, _plan.N)
"""

TF_JOB = """
import json, sys, time
t0 = time.perf_counter()
from ptychostudy.devices import claim_gpu
device = claim_gpu()
from ptychostudy.runtime import configure_tensorflow
tf = configure_tensorflow(1)
import numpy as np
sys.path.insert(0, sys.argv[2])
from steps import step_time
from ptychostudy.models.infer import Predictor
from ptychostudy.models.physics import canvas_pad
from ptychostudy.models.pinn import NetConfig, build_pinn
from ptychostudy.models.baseline import build_baseline
""" + CONFIG_AND_PROBE + """n, c, step = cfg["N"], cfg["C"], cfg["step"]
rng = np.random.default_rng(0)
offsets = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], float)[:c] * step / 2
rel = np.broadcast_to(offsets, (64, c, 2)) + rng.uniform(-1, 1, (64, c, 2))
pinn = build_pinn(NetConfig(n, c, cfg["pinn_filters"], pad=canvas_pad(np.abs(rel).max() + 2, n), log_scale=1.0), probe)
base = build_baseline(NetConfig(n, c, cfg["baseline_filters"], log_scale=1.0))
_out["fixed_s"] = time.perf_counter() - t0
_out["device"] = device
for kind, model, bs in (("pinn", pinn, cfg["pinn_batch"]), ("baseline", base, cfg["baseline_batch"])):
    if kind == "pinn":
        batch = {"diffraction": tf.constant(rng.random((bs, n, n, c), dtype=np.float32) * 5),
                 "coords_relative": tf.constant(rel[:bs], tf.float32)}
    else:
        batch = {k: tf.constant(rng.random((bs, n, n, 1), dtype=np.float32)) for k in ("diffraction", "amplitude", "phase")}
    t = step_time(model, kind, batch, 3)
    _out[f"train_{kind}_per_s"] = bs / t  # PINN: groups/s; Baseline: patterns/s
    ib = cfg["infer_batch"]
    pred = Predictor(model, batch_size=ib)
    x = rng.random((4 * ib, n, n, c), dtype=np.float32)
    r = np.resize(rel, (4 * ib, c, 2)).astype(np.float32)
    pred(x[:ib], r[:ib])  # trace
    t0 = time.perf_counter()
    pred(x, r)
    _out[f"infer_{kind}_groups_per_s"] = 4 * ib / (time.perf_counter() - t0)
    _out[f"{kind}_parameters"] = int(model.count_params())
"""

TORCH_JOB = """
import json, sys, time
from ptychostudy.devices import claim_gpu
claim_gpu()
from ptychostudy.runtime import configure_torch
configure_torch(1)
import numpy as np
from ptychostudy import lsqml
from ptychostudy.simulate import make_object, simulate_amplitudes
""" + CONFIG_AND_PROBE + """n, step, side = cfg["N"], cfg["step"], 8
size = int(n + step * (side + 1) + 24)
axis = size / 2 + step * (np.arange(side) - (side - 1) / 2)
pos = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2) + np.random.default_rng(0).uniform(-1, 1, (side * side, 2))
amp, scaled = simulate_amplitudes(make_object(size, 1), probe, pos, 1e4, np.random.default_rng(1))
epochs = 3
res = lsqml.reconstruct(amp, pos, scaled, (size, size), epochs=epochs, batch_size=cfg["ptychi_batch"],
                             seed=0, threads=1)
_out.update(lsqml_frames_per_s=len(pos) * epochs / res["wall_time_s"], lsqml_device=res["device"])
"""


def measure(configfile: Path) -> dict:
    import yaml

    from ptychostudy.config import MODEL_TRAINING_KEYS, build_plan

    raw = yaml.safe_load(configfile.read_text())
    plan = build_plan(raw)

    def setting(model, key, default):
        own = raw.get(model, {})
        return own[key] if key in MODEL_TRAINING_KEYS and key in own else raw.get("training", {}).get(key, default)

    cfg = {"N": plan.N, "C": plan.C, "step": min(v.step for v in plan.views.values()),
           "configfile": str(configfile),
           "pinn_filters": raw.get("pinn", {}).get("filters", 16),
           "baseline_filters": raw.get("baseline", {}).get("filters", 16),
           "pinn_batch": setting("pinn", "batch_size", 16), "baseline_batch": setting("baseline", "batch_size", 16),
           "infer_batch": raw.get("inference", {}).get("batch_size", 64),
           "ptychi_batch": raw.get("ptychi", {}).get("batch_size", 16)}
    arg = json.dumps(cfg)
    tf_costs = run_measured(TF_JOB, arg, str(ROOT / "bench"))
    torch_costs = run_measured(TORCH_JOB, arg)
    out = {"config": str(configfile.relative_to(ROOT) if configfile.is_absolute() else configfile),
           "machine": machine(), "threads": 1,
           **{k: cfg[k] for k in ("N", "C", "pinn_filters", "baseline_filters", "pinn_batch", "baseline_batch",
                                   "infer_batch", "ptychi_batch")},
           **{k: v for k, v in tf_costs.items() if k != "peak_rss_mib"}, "tf_job_peak_rss_mib": tf_costs["peak_rss_mib"],
           **{k: v for k, v in torch_costs.items() if k != "peak_rss_mib"}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/study_fly64.yaml")
    args = ap.parse_args()
    path = Path(args.configfile)
    costs = measure(path if path.is_absolute() else ROOT / path)
    out = ROOT / "bench" / "costs" / f"{path.stem}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(costs, indent=1) + "\n")
    print(json.dumps(costs, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
