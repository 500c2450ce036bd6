# Phase C: per dose, one independent object per split (train, validation, test), each scanned
# by every view's raster; the probe is scaled once per dose over all splits.


rule simulate_dose:
    output:
        train="results/phase_c/dose_{dose}/train.npz",
        validation="results/phase_c/dose_{dose}/validation.npz",
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
    priority: PRIORITY["simulate_dose"]
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("simulate_dose"),
        runtime=short_runtime,
    params:
        geometry=get_scan_geometry,
    script:
        "../scripts/simulate_dose.py"
