"""Merge adapter: stitch one split's inference chunks (one model) into merged.npz, exactly."""

from ptychostudy.runtime import setup_logging

log = setup_logging(snakemake.log[0])

from ptychostudy.stitch import write_merged  # noqa: E402

info = write_merged(
    list(snakemake.input.preds),
    snakemake.input.phase_c,
    snakemake.output.merged,
    window=snakemake.params.stitch["window"],
    phase_rounds=int(snakemake.params.stitch["phase_rounds"]),
)
log.info("wrote %s (%d chunks)", snakemake.output.merged, info["n_chunks"])
