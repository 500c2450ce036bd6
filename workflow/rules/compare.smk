# Phase G: every arm cropped, registered and scored alike per dose x view x split; summary.


rule compare_split:
    input:
        phase_c=get_phase_c,
        groups="results/phase_d/dose_{dose}/{view}/{split}/groups.npz",
        arms=get_arm_paths,
    output:
        metrics="results/phase_g/dose_{dose}/{view}/{split}/comparison_metrics.csv",
        aligned="results/phase_g/dose_{dose}/{view}/{split}/aligned.npz",
        frc="results/phase_g/dose_{dose}/{view}/{split}/frc.csv",
        figure=report(
            "results/phase_g/dose_{dose}/{view}/{split}/comparison.png",
            caption="../report/comparison.rst",
            category="Phase G comparisons",
            labels={"dose": "{dose}", "view": "{view}", "split": "{split}"},
        ),
    log:
        "logs/phase_g/dose_{dose}/{view}/{split}/compare.log",
    benchmark:
        "benchmarks/phase_g/dose_{dose}/{view}/{split}/compare.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=cpu_mem_mb,
        runtime=short_runtime,
    params:
        arm_names=ARMS,
    script:
        "../scripts/compare_split.py"


rule summarize_study:
    input:
        metrics=get_cell_files("comparison_metrics.csv"),
        aligned=get_cell_files("aligned.npz"),
    output:
        table=report(
            "results/summary/metrics.csv",
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        markdown="results/summary/summary.md",
        phase_plot=report(
            "results/summary/metrics_vs_dose_phase.png",
            caption="../report/metrics_vs_dose.rst",
            category="Summary",
            labels={"component": "phase"},
        ),
        amplitude_plot=report(
            "results/summary/metrics_vs_dose_amplitude.png",
            caption="../report/metrics_vs_dose.rst",
            category="Summary",
            labels={"component": "amplitude"},
        ),
        montage=report(
            "results/summary/montage_test_phase.png",
            caption="../report/montage.rst",
            category="Summary",
        ),
    log:
        "logs/summary/summarize.log",
    benchmark:
        "benchmarks/summary/summarize.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=cpu_mem_mb,
        runtime=short_runtime,
    params:
        cells=get_cells(),
    script:
        "../scripts/summarize.py"
