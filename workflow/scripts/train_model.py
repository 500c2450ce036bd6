"""Snakemake adapter: train PtychoPINN or the Baseline (wildcard ``model``) on a train split's chunks,
selecting the epoch on the validation split's chunks."""

from ptychostudy.devices import claim_gpu
from ptychostudy.runtime import configure_tensorflow, setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
claim_gpu()  # one device for this job's whole life (or the CPU), before TensorFlow/torch start
configure_tensorflow(snakemake.threads)  # noqa: F821  (before any TensorFlow op)

from ptychostudy.models.train import train_model  # noqa: E402

summary = train_model(
    kind=snakemake.wildcards.model,  # noqa: F821
    chunk_paths=list(snakemake.input.chunks),  # noqa: F821
    validation_paths=list(snakemake.input.validation),  # noqa: F821
    training=dict(snakemake.params.training),  # noqa: F821
    model_cfg=dict(snakemake.params.model_cfg),  # noqa: F821
    model_path=snakemake.output.model,  # noqa: F821
    history_path=snakemake.output.history,  # noqa: F821
    curve_path=snakemake.output.curve,  # noqa: F821
)
log.info("done: %s", summary)
