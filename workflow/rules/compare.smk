# Phase G: every arm cropped, registered and scored alike per dose x view x scored split x
# replicate; then the summary across cells and replicates.


rule compare_split:
    input:
        phase_c=get_phase_c,
        groups="results/phase_d/dose_{dose}/{view}/{split}/groups.npz",
        arms=get_arm_paths,
    output:
        metrics="results/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/comparison_metrics.csv",
        aligned="results/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/aligned.npz",
        frc="results/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/frc.csv",
        figure=report(
            "results/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/comparison.png",
            caption="../report/comparison.rst",
            category="Phase G comparisons",
            labels={
                "dose": "{dose}",
                "view": "{view}",
                "split": "{split}",
                "seed": "{seed}",
            },
        ),
    log:
        "logs/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/compare.log",
    benchmark:
        "benchmarks/phase_g/dose_{dose}/{view}/{split}/seed_{seed}/compare.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("compare_split"),
        runtime=short_runtime,
    params:
        arm_names=ARMS,
    script:
        "../scripts/compare_split.py"


rule summarize_study:
    input:
        metrics=get_cell_files("comparison_metrics.csv"),
        aligned=get_cell_files("aligned.npz"),
        histories=get_histories,
        overlaps=get_overlaps,
    output:
        table=report(
            SUMMARY_FILES["table"],
            caption="../report/summary_table.rst",
            category="Summary",
        ),
        stats=SUMMARY_FILES["stats"],
        differences=report(
            SUMMARY_FILES["differences"],
            caption="../report/differences.rst",
            category="Summary",
        ),
        views=SUMMARY_FILES["views"],
        markdown=SUMMARY_FILES["markdown"],
        phase_plot=report(
            SUMMARY_FILES["phase_plot"],
            caption="../report/metrics_vs_dose.rst",
            category="Summary",
            labels={"component": "phase"},
        ),
        amplitude_plot=report(
            SUMMARY_FILES["amplitude_plot"],
            caption="../report/metrics_vs_dose.rst",
            category="Summary",
            labels={"component": "amplitude"},
        ),
        montage=report(
            SUMMARY_FILES["montage"],
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
        mem_mb=mem_for("summarize_study"),
        runtime=short_runtime,
    params:
        cells=get_cells(),
    script:
        "../scripts/summarize.py"
