# Set-up and entry points. `make run` and `make test` work on a fresh machine: they create the
# virtual environment (.venv) and install everything the workflow needs.
VENV    ?= .venv
PY      := $(VENV)/bin/python
SMK     := $(VENV)/bin/snakemake
STAMP   := $(VENV)/.installed
CONFIG  ?= config/config.yaml
PUBLISH ?= docs/default_run
PYTHON3 ?= python3

.PHONY: run test check plan bench bench-full-size report publish clean

# torch/torchvision first, pinned (ptychi imports torchvision at module level and needs the
# matching pair); then the project with TensorFlow, Snakemake and the rest from pyproject.toml;
# on a machine whose nvidia-smi lists a GPU, also TensorFlow's CUDA libraries (the and-cuda
# extra: without them TensorFlow silently runs on the CPU).
TF_VERSION := $(shell sed -n 's/.*"tensorflow==\([0-9.]*\)".*/\1/p' pyproject.toml)
$(STAMP): pyproject.toml
	$(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then \
	  $(PY) -m pip install --quiet 'tensorflow[and-cuda]==$(TF_VERSION)'; fi
	touch $(STAMP)

# GPU jobs at once (resources: gpu=1 each): one per GPU; on a machine without a GPU they run
# on the CPU, and only --cores (their threads) limits them
GPUS    ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | grep -c '^GPU'); [ "$${n:-0}" -gt 0 ] && echo $$n || nproc)

## run the embedded default study (config/config.yaml) with the local profile (profiles/default);
## after a crash or kill, the same command resumes: a lock whose run is dead is cleared first
## (never under a running Snakemake: tools/clear_stale_lock.py)
run: $(STAMP)
	$(PY) tools/clear_stale_lock.py -- $(SMK) --configfile $(CONFIG)
	$(SMK) --configfile $(CONFIG) --resources gpu=$(GPUS)

## static checks of the workflow, then the test suite. TensorFlow and torch (ptychi) crash when
## loaded into one process, as they never are in the workflow's jobs: the ptychi tests get their own.
test: $(STAMP) check
	$(PY) -m pytest -q tests/test_ptychi.py
	$(PY) -m pytest -q --ignore=tests/test_ptychi.py

check: $(STAMP)
	$(SMK) --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules

## plan the full study without data: job counts per rule/resource, disk per phase, GPU job-hours
## (from bench/costs/study_fly64.json, measured by bench/bench_costs.py), and the rule graph
plan: $(STAMP)
	$(PY) tools/plan.py --configfile config/study_fly64.yaml --out results/plan --gpus $(GPUS)

## benchmarks (bench/*.py, each documented in its docstring); they write bench/results.md
bench: $(STAMP)
	$(PY) bench/run_all.py

## one dose x the dense view of config/study_fly64.yaml at its real size (N = 128, chunks of 4,096),
## every rule, epochs capped; writes bench/full_size.md (per-job peak RSS against its request,
## disk against `make plan`). About an hour on 2 cores, ~30 GB under bench/_work/full_size
bench-full-size: $(STAMP)
	$(PY) bench/bench_full_size.py

## HTML report of a finished run
report: $(STAMP)
	$(SMK) --configfile $(CONFIG) --report report.html

## copy the summary of a finished run into $(PUBLISH) (default docs/default_run/: what the README shows)
publish:
	rm -rf $(PUBLISH)
	mkdir -p $(PUBLISH)
	cd results/summary && cp summary.md metrics.csv metrics_stats.csv differences.csv views.csv \
	   metrics_vs_dose_phase.png metrics_vs_dose_amplitude.png montage_test_phase.png $(abspath $(PUBLISH))/

clean:
	rm -rf results logs benchmarks .snakemake report.html
