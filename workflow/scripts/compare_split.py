"""Phase G adapter: align every arm of one dose x view x split x replicate to the ground truth and score it."""

from ptychostudy.runtime import setup_logging

log = setup_logging(snakemake.log[0])

from ptychostudy.compare import compare_split_files  # noqa: E402

names, paths = list(snakemake.params.arm_names), list(snakemake.input.arms)
if len(names) != len(paths):
    raise ValueError(f"compare_split: params.arm_names {names} does not match input.arms {paths}")
compare_split_files(
    snakemake.input.phase_c,
    snakemake.input.groups,
    dict(zip(names, paths)),
    snakemake.output.metrics,
    snakemake.output.aligned,
    snakemake.output.frc,
    snakemake.output.figure,
    dose=int(snakemake.wildcards.dose),
    view=snakemake.wildcards.view,
    split=snakemake.wildcards.split,
    seed=int(snakemake.wildcards.seed),
)
log.info("wrote %s", snakemake.output.metrics)
