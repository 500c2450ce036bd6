# Phase E: PtychoPINN (unsupervised, Poisson NLL) and the supervised Baseline, per dose x view x
# replicate (training seed), streamed from the train split's chunk files; the validation split's
# chunks give the loss that selects the epoch (and stops early).


rule train_pinn:
    input:
        chunks=get_train_chunks,
        validation=get_validation_chunks,
    output:
        model="results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}/model.keras",
        history="results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}/history.csv",
        curve=report(
            "results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}/loss.png",
            caption="../report/training.rst",
            category="Phase E training",
            labels={
                "dose": "{dose}",
                "view": "{view}",
                "model": "{model}",
                "seed": "{seed}",
            },
        ),
    log:
        "logs/phase_e/dose_{dose}/{view}/{model}/seed_{seed}.log",
    benchmark:
        "benchmarks/phase_e/dose_{dose}/{view}/{model}/seed_{seed}.tsv"
    wildcard_constraints:
        model="pinn",
    priority: PRIORITY["train_pinn"]
    conda:
        "../../envs/tensorflow.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_for("train_pinn"),
        runtime=train_runtime,
    params:
        training=get_training_params,
        model_cfg=get_model_params,
    script:
        "../scripts/train_model.py"


use rule train_pinn as train_baseline with:
    wildcard_constraints:
        model="baseline",
    priority: PRIORITY["train_baseline"]
