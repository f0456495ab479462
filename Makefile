# mnist-repro: the Azure ML MNIST/scikit-learn tutorial as a reproducible DVC pipeline.
# `make` (or `make help`) lists the targets by section; `##@` lines are the section titles and
# `## ` after a target is its help. Every target works from a fresh clone.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
# DVC takes a repository lock: never run two DVC commands at once, even under `make -j`.
.NOTPARALLEL:

PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Stages run `python -m mnist_repro ...`: put the venv first so DVC finds that python.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

##@ Setup

.PHONY: help
help: ## Show this help, by section (colours only on a terminal)
	@if [ -t 1 ]; then b='\033[1m' c='\033[36m' r='\033[0m'; else b= c= r=; fi; \
	awk -v b="$$b" -v c="$$c" -v r="$$r" 'BEGIN {FS = ":.*## "} \
	  /^##@ / {printf "\n%s%s%s\n", b, substr($$0, 5), r} \
	  /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-22s%s %s\n", c, $$1, r, $$2}' $(MAKEFILE_LIST)

# uv installs the lock (pip takes about 15x longer); uv itself comes hash-pinned from
# requirements-uv.lock (the same uv as requirements-dev.lock). Where uv cannot be installed or
# fails, pip installs the lock instead (SETUP_WITH=pip forces that). uv reads no pip.conf: it
# uses the default index (or UV_INDEX_URL) and the system's CA certificates, as pip does here.
SETUP_WITH ?= uv
UV_INSTALL := $(BIN)/uv pip install --python $(BIN)/python --quiet --system-certs
PIP_INSTALL := $(BIN)/python -m pip install --quiet

$(STAMP): requirements-dev.lock requirements-uv.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ "$(SETUP_WITH)" = uv ] \
	  && $(PIP_INSTALL) --require-hashes --no-deps -r requirements-uv.lock \
	  && $(UV_INSTALL) --require-hashes --no-deps -r requirements-dev.lock \
	  && $(UV_INSTALL) --no-deps --no-build-isolation -e .; then \
	  echo "setup: installed requirements-dev.lock with uv"; \
	else \
	  [ "$(SETUP_WITH)" = uv ] && echo "setup: uv failed; installing with pip" >&2; \
	  $(PIP_INSTALL) --require-hashes --no-deps -r requirements-dev.lock \
	  && $(PIP_INSTALL) --no-deps --no-build-isolation -e . \
	  && echo "setup: installed requirements-dev.lock with pip"; \
	fi
	@touch $@

.PHONY: setup
setup: $(STAMP) ## Create .venv and install the locked dependencies (uv; pip if uv fails) and this package

.PHONY: lock
lock: $(STAMP) ## Re-resolve the hash-pinned lock files from pyproject.toml
	uv pip compile pyproject.toml --extra job --extra azure --extra dev --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --quiet \
	  -o requirements-dev.lock
	uv pip compile pyproject.toml --extra job -c requirements-dev.lock --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --quiet \
	  $(foreach p,$(IMAGE_UNUSED),--no-emit-package $(p)) -o docker/requirements.lock
	echo uv | uv pip compile - -c requirements-dev.lock --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header --quiet \
	  -o requirements-uv.lock

# Installed by the base dependencies but never imported by what the image runs (`dvc repro`,
# `dvc status` and the job's train command with MLflow logging; measured with an import trace,
# docs/docker.md): DVC's experiment queue (celery), hydra params, model registry (gto), studio,
# telemetry, ssh and `dvc dag` pieces, and MLflow's tracking server. Left out of the image.
IMAGE_UNUSED := amqp antlr4-python3-runtime asyncssh billiard celery click-didyoumean \
	click-plugins click-repl dvc-studio-client dvc-task grandalf gto h11 hydra-core \
	iterative-telemetry kombu omegaconf prompt-toolkit pydot semver uvicorn vine wcwidth

.PHONY: clean
clean: ## Remove caches and build files (keeps data/raw, the DVC cache and .venv)
	rm -rf build .pytest_cache .ruff_cache
	find src tests tools -name __pycache__ -type d -prune -exec rm -rf {} +

##@ Pipeline

.PHONY: repro
repro: $(STAMP) ## Run the pipeline (dvc repro); MNIST_MIRROR=<url or folder> adds a data source
	dvc repro

.PHONY: sweep
sweep: $(STAMP) ## Choose regularization on a validation split (params sweep, select), test once -> reports/sweep.md
	python -m mnist_repro sweep

.PHONY: verify
verify: $(STAMP) ## After make repro: do all DVC-tracked outputs match the committed dvc.lock? (exit 1 if not)
	python -m mnist_repro verify

##@ Quality

.PHONY: test
test: $(STAMP) ## Run the test suite (no network needed)
	pytest

.PHONY: lint
lint: $(STAMP) ## Lint the code (ruff) and the Dockerfile (hadolint)
	ruff check src tests tools
	ruff format --check src tests tools
	hadolint docker/Dockerfile

.PHONY: format
format: $(STAMP) ## Format the code (ruff)
	ruff format src tests tools
	ruff check --fix src tests tools

##@ Data sharing (storage): a DVC remote, e.g. on Azure Blob Storage (docs/storage.md)

# DVC_REMOTE=<name> picks a remote other than the default one.
DVC_REMOTE ?=
define require-remote
	@if [ -z "$(DVC_REMOTE)" ] && ! dvc remote default >/dev/null 2>&1; then \
	  echo "error: no DVC remote configured: run 'dvc remote add -d storage azure://<container>/<prefix>' (docs/storage.md)" >&2; \
	  exit 1; \
	fi
endef

.PHONY: push
push: $(STAMP) ## Upload data, model and reports to the DVC remote (DVC_REMOTE=<name> for another)
	$(require-remote)
	dvc push $(if $(DVC_REMOTE),--remote $(DVC_REMOTE))

.PHONY: pull
pull: $(STAMP) ## Download data, model and reports from the DVC remote (DVC_REMOTE=<name> for another)
	$(require-remote)
	dvc pull $(if $(DVC_REMOTE),--remote $(DVC_REMOTE))

.PHONY: test-storage
test-storage: $(STAMP) ## Test dvc push/pull against Azurite, the Azure Storage emulator (npm install once)
	python tools/azurite.py install
	pytest -m azurite

##@ Benchmarks: on data/raw, the pipeline's verified files (make repro first; docs/benchmarks.md)

.PHONY: bench
bench: bench-decode ## Time the tutorial preset vs the default; last line: speedup=... default_accuracy=...
	python tools/bench/bench_train.py

.PHONY: bench-setup
bench-setup: ## Time make setup (uv) vs the plain pip install of the same lock, fresh venvs; last line: speedup=...
	$(PYTHON) tools/bench/bench_setup.py

.PHONY: bench-decode
bench-decode: $(STAMP) ## Time decoding the MNIST files vs plain gzip
	python tools/bench/bench_decode.py

.PHONY: bench-storage
bench-storage: $(STAMP) ## Time dvc push/pull of the real outputs: Azure (Azurite) vs a folder remote
	python tools/azurite.py install
	python tools/bench/bench_storage.py

##@ Azure ML: the train stage on a compute cluster (docs/azure.md)

# Needs config.json (or .azureml/config.json) from your workspace, and `az login` (except DRY_RUN=1).
# The targets keep their remote-* names; the command behind them is `python -m mnist_repro azure`.
AZURE_ML := python -m mnist_repro azure
need-job = $(if $(JOB),,$(error JOB=<job name> is required, e.g. make $@ JOB=sharp_tail_123))

dry-run = $(filter-out 0 no false,$(DRY_RUN))
# DVC removes a stage's outputs before it runs it: when the remote train stage fails, put
# models/ back as dvc.lock records it (from the DVC cache), or say how.
define remote-train-stage
	$(1) MNIST_TRAIN_BACKEND=azureml dvc repro --force --single-item train || { rc=$$?; \
	  echo "$@: the remote train stage failed (exit $$rc): restoring models/ as dvc.lock records it (dvc checkout train)" >&2; \
	  dvc checkout train >&2 || echo "$@: models/ is not in the DVC cache: run 'dvc pull train' or 'dvc repro train'" >&2; \
	  exit $$rc; }
endef

.PHONY: train-remote
train-remote: $(STAMP) ## Train on Azure ML via DVC (dvc.lock records the downloaded model); DRY_RUN=1 writes specs only
ifneq ($(dry-run),)
	$(AZURE_ML) submit --dry-run
else
	$(AZURE_ML) check
	dvc repro download
	$(call remote-train-stage)
	dvc repro
endif

.PHONY: remote-fetch
remote-fetch: $(STAMP) ## Download a finished job's model into models/ and record it like train-remote (JOB=...)
	$(need-job)
	dvc repro download
	$(call remote-train-stage,MNIST_AZURE_JOB=$(JOB))
	dvc repro

.PHONY: remote-smoke
remote-smoke: $(STAMP) ## A ~minute job on tiny synthetic data, same image and command: does the workspace work? DRY_RUN=1
	$(AZURE_ML) smoke $(if $(dry-run),--dry-run)

.PHONY: remote-sweep
remote-sweep: $(STAMP) ## Sweep regularization on Azure ML and register the best model; DRY_RUN=1 writes specs only
	$(AZURE_ML) sweep $(if $(dry-run),--dry-run)

.PHONY: remote-status
remote-status: $(STAMP) ## Status and URL of an Azure ML job; follows its log while it runs (JOB=...)
	$(need-job)
	$(AZURE_ML) status $(JOB)

.PHONY: remote-cancel
remote-cancel: $(STAMP) ## Cancel an Azure ML job (JOB=...)
	$(need-job)
	$(AZURE_ML) cancel $(JOB)

.PHONY: remote-metrics
remote-metrics: $(STAMP) ## Print an Azure ML job's run metrics, like the tutorial's run.get_metrics() (JOB=...)
	$(need-job)
	$(AZURE_ML) metrics $(JOB)

.PHONY: remote-delete-compute
remote-delete-compute: $(STAMP) ## Delete the Azure ML compute cluster (the tutorial's clean-up)
	$(AZURE_ML) delete-compute

##@ Docker: one image (build context docker/ alone) for local runs and the Azure ML job

DOCKER ?= docker
# The tag is a content hash of docker/ (file names and bytes): same context, same tag.
DOCKER_TAG = $(shell cd docker && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
	| sha256sum | cut -c1-12)
DOCKER_IMAGE ?= mnist-repro:$(DOCKER_TAG)
DOCKER_BASE ?=
DOCKER_BUILD_FLAGS ?=
DOCKER_RUN_FLAGS ?=

.PHONY: docker-build
docker-build: ## Build the image (tag: content hash of docker/); DOCKER=podman, DOCKER_BASE=<image> swap engine/base
	$(DOCKER) build $(if $(DOCKER_BASE),--build-arg BASE=$(DOCKER_BASE)) $(DOCKER_BUILD_FLAGS) \
	  -t $(DOCKER_IMAGE) docker

.PHONY: docker-base-digest
docker-base-digest: $(STAMP) ## Pin docker/Dockerfile's ARG BASE to its tag's current digest (needs docker, skopeo or crane)
	python tools/docker/base_digest.py docker/Dockerfile

.PHONY: train-local
train-local: docker-build ## Run the pipeline (dvc repro) in the image on this repo, as you; passes MNIST_MIRROR
	DOCKER="$(DOCKER)" tools/docker/train-local.sh $(DOCKER_IMAGE) $(DOCKER_RUN_FLAGS)

.PHONY: test-docker
test-docker: $(STAMP) ## Build the image with a real engine (docker or podman) and run the pipeline in it
	tools/docker/test-docker.sh
