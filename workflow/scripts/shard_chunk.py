"""Shard adapter: gather one chunk of a split's groups into its own NPZ."""

from ptychostudy.runtime import setup_logging

log = setup_logging(snakemake.log[0])

from ptychostudy.shards import ShardSource  # noqa: E402

source = ShardSource(snakemake.input.phase_c, snakemake.input.groups, snakemake.params.chunk_size)
source.check_plan(snakemake.params.n_chunks)
source.write_chunk(int(snakemake.wildcards.chunk), snakemake.output.chunk)
log.info("wrote %s", snakemake.output.chunk)
