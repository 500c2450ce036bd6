# Phase D: per dose x view x split, group first (K nearest, choose C), then shard the groups.


rule group_view:
    input:
        phase_c=get_phase_c,
    output:
        groups="results/phase_d/dose_{dose}/{view}/{split}/groups.npz",
        overlap="results/phase_d/dose_{dose}/{view}/{split}/overlap.json",
    log:
        "logs/phase_d/dose_{dose}/{view}/{split}/group.log",
    benchmark:
        "benchmarks/phase_d/dose_{dose}/{view}/{split}/group.tsv"
    priority: PRIORITY["group_view"]
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("group_view"),
        runtime=short_runtime,
    params:
        grouping=get_grouping,
    script:
        "../scripts/group_view.py"


rule shard_chunk:
    input:
        phase_c=get_phase_c,
        groups="results/phase_d/dose_{dose}/{view}/{split}/groups.npz",
    output:
        chunk="results/phase_d/dose_{dose}/{view}/{split}/chunks/chunk_{chunk}.npz",
    log:
        "logs/phase_d/dose_{dose}/{view}/{split}/chunk_{chunk}.log",
    benchmark:
        "benchmarks/phase_d/dose_{dose}/{view}/{split}/chunk_{chunk}.tsv"
    priority: PRIORITY["shard_chunk"]
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("shard_chunk"),
        runtime=short_runtime,
    params:
        chunk_size=config["chunk_size"],
        n_chunks=get_n_chunks,
    script:
        "../scripts/shard_chunk.py"
