"""Summary adapter: all cells' metrics in one table, their spread across replicates, the study's
differences with intervals, the overlap axis, plots, montage and summary.md."""

from ptychostudy.runtime import setup_logging

log = setup_logging(snakemake.log[0])

from ptychostudy.summary import summarize  # noqa: E402

summarize(
    metrics_paths=list(snakemake.input.metrics),
    aligned_paths=list(snakemake.input.aligned),
    cells=list(snakemake.params.cells),
    history_paths=list(snakemake.input.histories),
    overlap_paths=list(snakemake.input.overlaps),
    outputs=dict(snakemake.output.items()),
)
log.info("wrote %s", snakemake.output.table)
