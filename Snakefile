# fly64 dose/overlap ptychography study: simulate (C), group and shard (D), train (E),
# reconstruct iteratively (F), infer per chunk, merge, compare (G), summarise.
# Run: `make run` (default config, local) or see README.md for clusters.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dose=r"\d+",
    view="|".join(VIEWS),
    split="|".join(SPLITS),
    model="|".join(NETWORKS),
    chunk=r"\d{4}",
    seed=r"\d+",


include: "workflow/rules/simulate.smk"
include: "workflow/rules/group.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ptychi.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/compare.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
