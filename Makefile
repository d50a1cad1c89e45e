# skinexp: `make train` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= test,sweep
ARGS ?=
PYTEST_ARGS ?=
UI_PORT ?= 5000

.PHONY: install install-gpu train test test-deps test-slow test-all ui sweep bench bench-quality bench-serve lint clean

# -qq: pip says nothing but errors (a machine's pip configuration may add warnings about its own mirrors).
$(STAMP): pyproject.toml
	@echo "skinexp: installing into $(VENV) with the $(EXTRAS) extras (a few minutes, once)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --upgrade pip
	@$(PY) -m pip install -qq -e '.[$(EXTRAS)]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install skinexp with its test and sweep extras

# tensorflow-cpu and tensorflow[and-cuda] install the same `tensorflow` package: the CPU build goes first,
# then the CUDA build is reinstalled over the files they shared.
install-gpu: $(STAMP)  ## swap the CPU TensorFlow for the CUDA build (Linux with an NVIDIA GPU)
	$(PY) -m pip install --quiet -e '.[gpu]'
	$(PY) -m pip uninstall --yes tensorflow-cpu
	$(PY) -m pip install --quiet --force-reinstall --no-deps 'tensorflow==2.21.*'

train: $(STAMP)  ## train the default experiment (synthetic data) into runs/; extra overrides via ARGS="..."
	$(PY) -m skinexp train $(ARGS)

# Two workers: each imports TensorFlow once, and tiny trainings leave a core idle between their graph builds.
test: $(STAMP)  ## the default (fast) test suite, in two worker processes
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# What the slow tests need from the machine: Debian's chromium for the browser tests (installed as root).
test-deps:  ## install the system packages the slow tests use (as root; says what to do otherwise)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and this is not root: the browser tests will skip (apt-get install chromium)"; fi

test-slow: $(STAMP) test-deps  ## slow and real-data tests only
	$(PY) -m pytest -m "slow or real_data" $(PYTEST_ARGS)

test-all: $(STAMP) test-deps
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

ui: $(STAMP)  ## MLflow UI on 127.0.0.1:$(UI_PORT) over runs/mlflow.db
	$(PY) -m skinexp ui port=$(UI_PORT)

sweep: $(STAMP)  ## a small example sweep on synthetic data, then its leaderboard
	$(PY) -m skinexp train -m model.filters=8,16 optim.lr=1e-3,3e-3 train.epochs=3 dataset.image_size=64
	$(PY) -m skinexp compare

bench: $(STAMP)  ## throughput, start-up and memory against the notebook's approach (about 10 minutes)
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/memory.py

bench-quality: $(STAMP)  ## quality over time on the real images (about 30 minutes; writes docs/quality_over_time.*)
	$(PY) benchmarks/quality.py

bench-serve: $(STAMP)  ## REST endpoint latency vs predict in-process, one 600x450 JPEG per request (about 3 minutes)
	$(PY) benchmarks/serve.py

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff
	$(PY) -m ruff check skinexp tests benchmarks

clean:  ## build leftovers and caches; never runs/ (your experiments) or .venv
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
