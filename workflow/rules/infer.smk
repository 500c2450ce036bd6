# Inference: one GPU job per dose x view x split x model x replicate x chunk; then an exact
# streaming merge per split. Only the scored splits (train, test) are reconstructed.


rule infer_chunk:
    input:
        model="results/phase_e/dose_{dose}/{view}/{model}/seed_{seed}/model.keras",
        chunk="results/phase_d/dose_{dose}/{view}/{split}/chunks/chunk_{chunk}.npz",
    output:
        pred=chunk_prediction(
            "results/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_{chunk}.npz"
        ),
    log:
        "logs/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_{chunk}.log",
    benchmark:
        "benchmarks/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/chunk_{chunk}.tsv"
    conda:
        "../../envs/tensorflow.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=mem_for("infer_chunk"),
        runtime=short_runtime,
    params:
        batch_size=config["inference"]["batch_size"],
    script:
        "../scripts/infer_chunk.py"


rule merge_chunks:
    input:
        preds=get_chunk_predictions,
        phase_c=get_phase_c,
    output:
        merged="results/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/merged.npz",
    log:
        "logs/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/merge.log",
    benchmark:
        "benchmarks/inference/dose_{dose}/{view}/{split}/{model}/seed_{seed}/merge.tsv"
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("merge_chunks"),
        runtime=short_runtime,
    params:
        stitch=get_stitch_params,
    script:
        "../scripts/merge_chunks.py"
