"""Phase D adapter: group one view of one split, write groups.npz and the measured overlap."""

from ptychostudy.runtime import setup_logging

setup_logging(snakemake.log[0])

from ptychostudy.shards import write_groups  # noqa: E402

write_groups(
    snakemake.input.phase_c,
    snakemake.output.groups,
    snakemake.output.overlap,
    view=snakemake.wildcards.view,
    gridsize=snakemake.params.gridsize,
    k=snakemake.params.neighbor_count,
    n_groups=snakemake.params.n_groups,
    seeds=snakemake.params.seeds,
    what=f"n_groups.{snakemake.wildcards.split} of view '{snakemake.wildcards.view}'",
)
