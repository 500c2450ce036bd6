# Phase C: one simulation per dose (the union of the views' rasters), split along y.


rule simulate_dose:
    output:
        train="results/phase_c/dose_{dose}/train.npz",
        test="results/phase_c/dose_{dose}/test.npz",
        figure=report(
            "results/phase_c/dose_{dose}/overview.png",
            caption="../report/phase_c.rst",
            category="Phase C data",
            labels={"dose": "{dose}"},
        ),
    log:
        "logs/phase_c/dose_{dose}.log",
    benchmark:
        "benchmarks/phase_c/dose_{dose}.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=cpu_mem_mb,
        runtime=short_runtime,
    params:
        config=config,
    script:
        "../scripts/simulate_dose.py"
