# Phase F: the iterative arm, LSQML of ptychi on all positions of a view's split.


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
    conda:
        "../../envs/ptychi.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=gpu_mem_mb,
        runtime=train_runtime,
    params:
        ptychi=config["ptychi"],
        seed=config["seeds"]["training"],
    script:
        "../scripts/reconstruct_ptychi.py"
