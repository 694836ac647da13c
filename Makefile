# MaskPilot: set-up, build, test and benchmark commands. `make test` is what CI runs.
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libpng-dev libjpeg-dev pkg-config libdnnl-dev \
                slurmctld slurmd slurm-client munge
NPROC := $(shell nproc 2>/dev/null || echo 2)
# Open MPI refuses root and more ranks than cores unless told; CI runs as root on 2 cores.
MPIRUN := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 mpirun --oversubscribe
BIN := .build/release

.PHONY: deps build test bench bench-compare smoke crash-test experiment clean

## deps: install the Debian packages MaskPilot links against, only those missing (idempotent).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "make deps: all system packages present"; fi

## build: release build of the library targets and the maskpilot CLI.
build: deps
	swift build -c release

## test: every unit test (release, one BLAS thread), the bf16 ones again with bf16 emulated (as on CPUs without
## AVX-512, whichever CPU this is), the multi-rank tests under mpirun -np 2, the failure tests
## (a failing rank ends the job naming itself; mismatched configs stop at start), resume, converters, evaluation, Cityscapes (reader,
## training, the three official evaluators against cityscapesscripts),
## rank placement by cluster/launch.sh, preemption + resubmission under a real one-node Slurm, bad input (faults), and
## cluster/experiment.sh continuing from its committed records.
test: deps
	swift build -c release --build-tests
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 swift test -c release --skip-build
	MASKPILOT_BF16=emulated OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 swift test -c release --skip-build \
	  --filter 'BF16Tests|BF16OpsTests|BF16FixtureTests|ConvKernelTests|OneDNNConvTests|ThreadDeterminismTests|TrainStepTests'
	$(MPIRUN) -np 2 $(BIN)/maskpilot-mpi-tests
	cluster/test-failures.sh
	cluster/test-resume.sh
	cluster/test-converters.sh
	cluster/test-eval.sh
	cluster/test-cityscapes.sh
	cluster/test-launch.sh
	cluster/test-slurm.sh
	cluster/test-faults.sh
	cluster/test-experiment.sh

## smoke: the main job on a built-in default — synthetic COCO data, MP-Former trained with 2 MPI ranks.
smoke: build
	cluster/smoke.sh

## crash-test: SIGKILL the 2-rank smoke training at 20 random moments (some inside a checkpoint write), resuming
## each time; every .h5 must stay readable and every resume must start from the newest intact checkpoint.
## Takes a few minutes; not part of `make test`. Results: docs/reliability.md.
crash-test: build
	cluster/crash-test.sh

## experiment: MP-Former vs Mask2Former on a synthetic COCO-instance dataset, 3 seeds each, same initialization, data
## order and budget (2000 steps, 2 ranks; about 30 minutes on 2 cores), evaluated on a held-out split; writes
## docs/experiments/synthetic/report.md with its plots. Bigger budgets: cluster/experiment.sh --steps/--ranks/--hostfile.
experiment: build
	cluster/experiment.sh

## bench: kernel throughput table (one thread), the numbers docs/perf.md records.
bench: build
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/maskpilot bench kernels --threads 1

## bench-compare: MaskPilot vs HF transformers' Mask2Former in PyTorch (fp32 and bf16 autocast), alternately in one
## run, 1 and 2 threads, bench and R50 configs (COMPARE_CONFIGS=swin-t,swin-l for the Swin ones): step and inference
## times, ratios, peak RSS. Creates a venv with torch and transformers from PyPI on first use (several GB;
## COMPARE_VENV=DIR uses another). Takes about 15 minutes for bench,r50.
COMPARE_VENV ?= .build/venv-compare
COMPARE_CONFIGS ?= bench,r50
bench-compare: build
	@[ -x $(COMPARE_VENV)/bin/python ] && $(COMPARE_VENV)/bin/python -c "import torch, transformers" 2>/dev/null || \
	  { python3 -m venv $(COMPARE_VENV) && $(COMPARE_VENV)/bin/pip install --quiet torch transformers; }
	$(COMPARE_VENV)/bin/python tools/compare_pytorch.py --maskpilot $(BIN)/maskpilot --configs $(COMPARE_CONFIGS)

clean:
	rm -rf .build
