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
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=cpu_mem_mb,
        runtime=short_runtime,
    params:
        gridsize=config["gridsize"],
        neighbor_count=config["neighbor_count"],
        n_groups=get_n_groups,
        seeds=config["seeds"],
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
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=chunk_mem_mb,
        runtime=short_runtime,
    params:
        chunk_size=config["chunk_size"],
        n_chunks=get_n_chunks,
    script:
        "../scripts/shard_chunk.py"
