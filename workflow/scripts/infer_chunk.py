"""Snakemake adapter: predict the object patches of one chunk with a trained model."""

from ptychostudy.devices import claim_gpu
from ptychostudy.runtime import configure_tensorflow, setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821
claim_gpu()  # one device for this job's whole life (or the CPU), before TensorFlow/torch start
configure_tensorflow(snakemake.threads)  # noqa: F821  (before any TensorFlow op)

from ptychostudy.models.infer import infer_chunk_file  # noqa: E402

summary = infer_chunk_file(
    model_path=snakemake.input.model,  # noqa: F821
    chunk_path=snakemake.input.chunk,  # noqa: F821
    out_path=snakemake.output.pred,  # noqa: F821
    batch_size=int(snakemake.params.batch_size),  # noqa: F821
)
log.info("done: %s", summary)
