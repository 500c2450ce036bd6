"""Phase F adapter: LSQML (ptychi) on all positions of one dose × view × split -> ptychi.npz."""

from ptychostudy.devices import claim_gpu
from ptychostudy.runtime import configure_torch, setup_logging

log = setup_logging(snakemake.log[0])
claim_gpu()  # one device for this job's whole life (or the CPU), before TensorFlow/torch start
configure_torch(snakemake.threads)

from ptychostudy.lsqml import reconstruct_split  # noqa: E402

opts = dict(snakemake.params.ptychi)
res = reconstruct_split(
    snakemake.input.phase_c,
    snakemake.input.groups,
    snakemake.output.recon,
    epochs=int(opts["epochs"]),
    batch_size=int(opts["batch_size"]),
    refine_probe=bool(opts["refine_probe"]),
    noise_model=str(opts["noise_model"]),
    seed=int(opts["seed"]),
    threads=snakemake.threads,
)
log.info(
    "wrote %s: %d positions, %d epochs, %.1f s on %s",
    snakemake.output.recon, res["n_positions"], res["epochs"], res["wall_time_s"], res["device"],
)
