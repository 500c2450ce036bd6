# Helpers shared by the rule files. The static study plan; target lists; the parameters of each
# job, exactly the keys it reads (so a config edit reruns only the jobs that read the edited
# key); and resources derived from the data sizes.
import functools
import os
import sys

# The library (src/ptychostudy) is installed into .venv by `make`; the envs/*.yaml install it
# too. Importing from the source tree here keeps parse-time planning working from any checkout.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from ptychostudy.resources import mem_mb as mem_model
from ptychostudy.config import (
    NETWORKS,
    SCORED_SPLITS,
    SPLITS,
    ConfigError,
    build_plan,
    network_architecture,
    network_training,
)

# the config file(s) of this run, named in parse-time errors (the last one given wins a key)
CONFIG_FILES = ", ".join(str(f) for f in workflow.configfiles) or "the config"
try:
    PLAN = build_plan(config)
except ConfigError as exc:
    raise ConfigError(f"{CONFIG_FILES}: {exc}") from None
DOSES = [str(d) for d in PLAN.doses]
VIEWS = list(PLAN.view_names)
NN_MODELS = list(PLAN.nn_models)
ARMS = list(PLAN.models)
SEEDS = [str(s) for s in PLAN.replicates]


# ---- inputs ------------------------------------------------------------------------------
def get_phase_c(wildcards):
    return f"results/phase_c/dose_{wildcards.dose}/{wildcards.split}.npz"


def chunk_paths(dose, view, split):
    """Every chunk file of one dose x view x split, known from the config alone."""
    return expand(
        "results/phase_d/dose_{dose}/{view}/{split}/chunks/chunk_{chunk}.npz",
        dose=dose,
        view=view,
        split=split,
        chunk=PLAN.chunk_ids(view, split),
    )


def get_train_chunks(wildcards):
    return chunk_paths(wildcards.dose, wildcards.view, "train")


def get_validation_chunks(wildcards):
    return chunk_paths(wildcards.dose, wildcards.view, "validation")


def chunk_prediction(path):
    """A chunk's prediction file; temporary when `inference.keep_predictions` is false: Snakemake
    deletes it once its split's merge (its only consumer) has succeeded. A run stopped later
    resumes from the merged files; a merge that must be redone recomputes its chunks."""
    return path if config["inference"]["keep_predictions"] else temp(path)


def get_chunk_predictions(wildcards):
    return expand(
        "results/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_{chunk}.npz",
        dose=wildcards.dose,
        view=wildcards.view,
        split=wildcards.split,
        model=wildcards.model,
        seed=wildcards.seed,
        chunk=PLAN.chunk_ids(wildcards.view, wildcards.split),
    )


# LSQML has randomness of its own only with the Poisson noise model (a random term in its step
# size; with the Gaussian model and ptychi's random batching, whose generator ptychi leaves
# unseeded, the result does not depend on the seed): only then does it run once per replicate.
PTYCHI_PER_REPLICATE = config["ptychi"]["noise_model"] != "gaussian"


def ptychi_path(cell, seed):
    """LSQML's reconstruction of a cell ('dose_<d>/<view>/<split>'), per replicate or shared."""
    if PTYCHI_PER_REPLICATE:
        return f"results/phase_f/{cell}/seed_{seed}/ptychi.npz"
    return f"results/phase_f/{cell}/ptychi.npz"


def get_arm_paths(wildcards):
    """Reconstructions of one cell and replicate, one per arm, in the order of config `models`."""
    cell = f"dose_{wildcards.dose}/{wildcards.view}/{wildcards.split}"
    return [
        (
            ptychi_path(cell, wildcards.seed)
            if arm == "ptychi"
            else f"results/inference/{cell}/{arm}/seed_{wildcards.seed}/merged.npz"
        )
        for arm in ARMS
    ]


def get_histories(wildcards):
    """Every training history (the summary reports each network's optimisation budget)."""
    return expand(
        "results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}/history.csv",
        dose=DOSES,
        view=VIEWS,
        model=NN_MODELS,
        seed=SEEDS,
    )


def get_overlaps(wildcards):
    return expand(
        "results/phase_d/dose_{dose}/{view}/{split}/overlap.json",
        dose=DOSES,
        view=VIEWS,
        split=SCORED_SPLITS,
    )


# ---- parameters: each rule gets the keys it reads, and no others ---------------------------
def get_scan_geometry(wildcards):
    """Phase C reads the scan geometry (objects, probe, views' steps, grid, simulation seed)."""
    return PLAN.geometry.as_params()


def get_grouping(wildcards):
    view = PLAN.views[wildcards.view]
    return {
        "gridsize": PLAN.gridsize,
        "neighbor_count": PLAN.neighbor_count,
        "n_groups": view.n_groups_request[wildcards.split],
        "grouping_seed": config["seeds"]["grouping"],
        "subsampling_seed": config["seeds"]["subsampling"],
    }


def get_n_chunks(wildcards):
    return PLAN.n_chunks(wildcards.view, wildcards.split)


def get_training_params(wildcards):
    return network_training(config, wildcards.model, int(wildcards.seed))


def get_model_params(wildcards):
    return network_architecture(config, wildcards.model)


def get_ptychi_params(wildcards):
    """The LSQML settings and its seed: the replicate's with the Poisson model, else a fixed one."""
    seed = getattr(wildcards, "seed", None)
    return dict(
        config["ptychi"],
        seed=int(seed if seed is not None else config["seeds"]["simulation"]),
    )


def get_stitch_params(wildcards):
    """The merge's window, and its phase rounds: config `stitch.phase_rounds` for the arms
    listed in `stitch.reconcile`, 0 for the others."""
    stitch = config["stitch"]
    rounds = stitch["phase_rounds"] if wildcards.model in stitch["reconcile"] else 0
    return {
        "window": {k: stitch[k] for k in ("window", "central_fraction")},
        "phase_rounds": rounds,
    }


# ---- targets -----------------------------------------------------------------------------
def get_cells():
    """Every scored cell and replicate, as 'dose_<d>/<view>/<split>/seed_<s>'."""
    return [
        f"dose_{dose}/{view}/{split}/seed_{seed}"
        for dose in DOSES
        for view in VIEWS
        for split in SCORED_SPLITS
        for seed in SEEDS
    ]


def get_cell_files(name):
    return [f"results/phase_g/{cell}/{name}" for cell in get_cells()]


SUMMARY_FILES = {
    "table": "results/summary/metrics.csv",
    "stats": "results/summary/metrics_stats.csv",
    "differences": "results/summary/differences.csv",
    "views": "results/summary/views.csv",
    "markdown": "results/summary/summary.md",
    "phase_plot": "results/summary/metrics_vs_dose_phase.png",
    "amplitude_plot": "results/summary/metrics_vs_dose_amplitude.png",
    "montage": "results/summary/montage_test_phase.png",
}


def get_final_output():
    """Everything the default target builds (the summary pulls in every phase)."""
    return list(SUMMARY_FILES.values()) + expand(
        "results/phase_c/dose_{dose}/overview.png", dose=DOSES
    )


# ---- resources: portable names only (gpu, mem_mb, runtime); site details live in profiles/ --
# memory from the data sizes (ptychostudy.resources), times the attempt (SLURM retries)
def job_mem_mb(rule_name, wildcards, attempt):
    view, split = getattr(wildcards, "view", None), getattr(wildcards, "split", None)
    return attempt * mem_model(PLAN, rule_name, view, split, arms=len(ARMS))


def mem_for(rule_name):
    """The `mem_mb` resource function of a rule."""
    return functools.partial(job_mem_mb, rule_name)


def train_runtime(wildcards, attempt):
    return 120 * attempt


def short_runtime(wildcards, attempt):
    return 30 * attempt


# Priorities: the longest jobs start first, so that the short per-chunk and Phase G jobs fill
# the cores around them at the end and the run's wall time approaches the sum of job times
# divided by the cores. Snakemake starts the highest-priority ready job first but does not pass
# a rule's priority on to the jobs it waits for, so the chain that feeds training (simulation,
# grouping, sharding) ranks above it: by the longest work that waits on each rule.
PRIORITY = {
    "simulate_dose": 60,
    "group_view": 50,
    "shard_chunk": 40,
    "train_pinn": 30,
    "train_baseline": 20,
    "reconstruct_ptychi": 10,
}
