"""Summary adapter: all cells' metrics in one table, metric-vs-dose plots, phase montage, summary.md."""

from ptychostudy.runtime import setup_logging

log = setup_logging(snakemake.log[0])

from ptychostudy.summary import summarize  # noqa: E402

summarize(
    list(snakemake.input.metrics),
    list(snakemake.input.aligned),
    list(snakemake.params.cells),
    snakemake.output.table,
    snakemake.output.phase_plot,
    snakemake.output.amplitude_plot,
    snakemake.output.montage,
    snakemake.output.markdown,
)
log.info("wrote %s", snakemake.output.table)
