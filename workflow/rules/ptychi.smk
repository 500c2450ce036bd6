# Phase F: the iterative arm, LSQML of ptychi on all positions of a view's split; once per cell,
# or once per replicate when its noise model gives it randomness of its own (common.smk).


rule reconstruct_ptychi:
    input:
        phase_c=get_phase_c,
        groups="results/phase_d/dose_{dose}/{view}/{split}/groups.npz",
    output:
        recon="results/phase_f/dose_{dose}/{view}/{split}/ptychi.npz",
    log:
        "logs/phase_f/dose_{dose}/{view}/{split}/ptychi.log",
    benchmark:
        "benchmarks/phase_f/dose_{dose}/{view}/{split}/ptychi.tsv"
    priority: PRIORITY["reconstruct_ptychi"]
    conda:
        "../../envs/ptychi.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=mem_for("reconstruct_ptychi"),
        runtime=train_runtime,
    params:
        ptychi=get_ptychi_params,
    script:
        "../scripts/reconstruct_ptychi.py"


if PTYCHI_PER_REPLICATE:

    use rule reconstruct_ptychi as reconstruct_ptychi_replicate with:
        output:
            recon="results/phase_f/dose_{dose}/{view}/{split}/seed_{seed}/ptychi.npz",
        log:
            "logs/phase_f/dose_{dose}/{view}/{split}/seed_{seed}/ptychi.log",
        benchmark:
            "benchmarks/phase_f/dose_{dose}/{view}/{split}/seed_{seed}/ptychi.tsv"
