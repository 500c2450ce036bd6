"""Phase C adapter: simulate one dose and write the train/validation/test NPZs and the overview figure."""

from ptychostudy.runtime import limit_cpu_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_cpu_threads(snakemake.threads)

from ptychostudy.config import SPLITS, ScanGeometry  # noqa: E402
from ptychostudy.phase_c import validate_phase_c, write_phase_c  # noqa: E402
from ptychostudy.figures import plot_phase_c  # noqa: E402

geometry = ScanGeometry.from_params(snakemake.params.geometry)
paths = {split: snakemake.output[split] for split in SPLITS}
data = write_phase_c(geometry, int(snakemake.wildcards.dose), paths)
for split, path in paths.items():
    validate_phase_c(path)
plot_phase_c(data, snakemake.output.figure)
log.info("wrote %s", paths)
