"""Phase D adapter: group one view of one split, write groups.npz and the measured overlap."""

from ptychostudy.runtime import setup_logging

setup_logging(snakemake.log[0])

from ptychostudy.shards import write_groups  # noqa: E402

g = snakemake.params.grouping
write_groups(
    snakemake.input.phase_c,
    snakemake.output.groups,
    snakemake.output.overlap,
    view=snakemake.wildcards.view,
    gridsize=g["gridsize"],
    k=g["neighbor_count"],
    n_groups=g["n_groups"],
    seeds={"grouping": g["grouping_seed"], "subsampling": g["subsampling_seed"]},
    what=f"n_groups.{snakemake.wildcards.split} of view '{snakemake.wildcards.view}'",
)
