# Helpers shared by all rule files (the static study plan, target lists, resources).
import os
import sys

# The library (src/ptychostudy) is installed into .venv by `make`; the envs/*.yaml install it
# too. Importing from the source tree here keeps parse-time planning working from any checkout.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from ptychostudy.config import MODEL_TRAINING_KEYS, SPLITS, ConfigError, build_plan

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


def get_phase_c(wildcards):
    return f"results/phase_c/dose_{wildcards.dose}/{wildcards.split}.npz"


def get_chunk_paths(wildcards):
    """Every chunk file of one dose x view x split, known from the config alone."""
    return expand(
        "results/phase_d/dose_{dose}/{view}/{split}/chunks/chunk_{chunk}.npz",
        dose=wildcards.dose,
        view=wildcards.view,
        split=wildcards.split,
        chunk=PLAN.chunk_ids(wildcards.view, wildcards.split),
    )


def get_n_groups(wildcards):
    """'all' or the number of groups of this view and split (config `n_groups`)."""
    return PLAN.views[wildcards.view].n_groups_request[wildcards.split]


def get_n_chunks(wildcards):
    return PLAN.n_chunks(wildcards.view, wildcards.split)


def get_train_chunks(wildcards):
    return expand(
        "results/phase_d/dose_{dose}/{view}/train/chunks/chunk_{chunk}.npz",
        dose=wildcards.dose,
        view=wildcards.view,
        chunk=PLAN.chunk_ids(wildcards.view, "train"),
    )


def chunk_prediction(path):
    """A chunk's prediction file; temporary when `inference.keep_predictions` is false: Snakemake
    deletes it once its split's merge (its only consumer) has succeeded. A run stopped later
    resumes from the merged files; a merge that must be redone recomputes its chunks."""
    return path if config["inference"]["keep_predictions"] else temp(path)


def get_chunk_predictions(wildcards):
    return expand(
        "results/inference/dose_{dose}/{view}/{split}/{model}/chunk_{chunk}.npz",
        dose=wildcards.dose,
        view=wildcards.view,
        split=wildcards.split,
        model=wildcards.model,
        chunk=PLAN.chunk_ids(wildcards.view, wildcards.split),
    )


def get_arm_paths(wildcards):
    """Reconstructions of one cell, one per arm, in the order of config `models`."""
    paths = []
    for arm in ARMS:
        if arm == "ptychi":
            paths.append(
                f"results/phase_f/dose_{wildcards.dose}/{wildcards.view}/{wildcards.split}/ptychi.npz"
            )
        else:
            paths.append(
                f"results/inference/dose_{wildcards.dose}/{wildcards.view}/{wildcards.split}/{arm}/merged.npz"
            )
    return paths


def get_training_params(wildcards):
    own = {k: v for k, v in config[wildcards.model].items() if k in MODEL_TRAINING_KEYS}
    return dict(config["training"], seed=config["seeds"]["training"], **own)


def get_model_params(wildcards):
    return {
        k: v for k, v in config[wildcards.model].items() if k not in MODEL_TRAINING_KEYS
    }


def get_stitch_params(wildcards):
    """The merge's window, and its phase rounds: config `stitch.phase_rounds` for the arms
    listed in `stitch.reconcile`, 0 for the others."""
    stitch = config["stitch"]
    rounds = stitch["phase_rounds"] if wildcards.model in stitch["reconcile"] else 0
    return {
        "window": {k: stitch[k] for k in ("window", "central_fraction")},
        "phase_rounds": rounds,
    }


def get_cells():
    return [
        f"{dose}/{view}/{split}" for dose in DOSES for view in VIEWS for split in SPLITS
    ]


def get_cell_files(name):
    return [f"results/phase_g/dose_{cell}/{name}" for cell in get_cells()]


def get_final_output():
    """Everything the default target builds (the summary pulls in every phase)."""
    return [
        "results/summary/metrics.csv",
        "results/summary/summary.md",
        "results/summary/metrics_vs_dose_phase.png",
        "results/summary/metrics_vs_dose_amplitude.png",
        "results/summary/montage_test_phase.png",
    ] + expand("results/phase_c/dose_{dose}/overview.png", dose=DOSES)


# Resources: portable names only (gpu, mem_mb, runtime); site details live in profiles/.
def gpu_mem_mb(wildcards, attempt):
    return 4000 * attempt


def chunk_mem_mb(wildcards, attempt):
    # one chunk in memory: diffraction (float32) plus true or predicted patches (complex64),
    # twice for temporaries, on top of ~1 GB of interpreter and TensorFlow
    chunk_bytes = PLAN.chunk_size * PLAN.N**2 * PLAN.gridsize**2 * (4 + 8)
    return (1000 + 2 * chunk_bytes // 10**6) * attempt


def cpu_mem_mb(wildcards, attempt):
    return 2000 * attempt


def train_runtime(wildcards, attempt):
    return 120 * attempt


def short_runtime(wildcards, attempt):
    return 30 * attempt
