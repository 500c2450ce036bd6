# Phase E: PtychoPINN (unsupervised, Poisson NLL) and the supervised Baseline, per dose x view,
# streamed from the train split's chunk files.


rule train_pinn:
    input:
        chunks=get_train_chunks,
    output:
        model="results/phase_e/dose_{dose}/{view}/{model}/model.keras",
        history="results/phase_e/dose_{dose}/{view}/{model}/history.csv",
        curve=report(
            "results/phase_e/dose_{dose}/{view}/{model}/loss.png",
            caption="../report/training.rst",
            category="Phase E training",
            labels={"dose": "{dose}", "view": "{view}", "model": "{model}"},
        ),
    log:
        "logs/phase_e/dose_{dose}/{view}/{model}.log",
    benchmark:
        "benchmarks/phase_e/dose_{dose}/{view}/{model}.tsv"
    wildcard_constraints:
        model="pinn",
    conda:
        "../../envs/tensorflow.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=gpu_mem_mb,
        runtime=train_runtime,
    params:
        training=get_training_params,
        model_cfg=get_model_params,
    script:
        "../scripts/train_model.py"


use rule train_pinn as train_baseline with:
    wildcard_constraints:
        model="baseline",
