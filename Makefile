# skinexp: `make train` and `make test` work on a fresh machine (they create .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXTRAS ?= test,sweep
ARGS ?=
PYTEST_ARGS ?=
UI_PORT ?= 5000
SERVER_STAMP := $(VENV)/.server-stamp
JAX_STAMP := $(VENV)/.jax-stamp

.PHONY: install install-gpu install-jax train test test-deps test-slow test-all ui sweep bench bench-quality bench-serve lint clean \
	bench-backends bench-precision gpu-check-sim docs docs-check \
	install-server server postgres slurm-up slurm-down bench-server

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

# The JAX backend (train.backend=jax): jax with its CPU jaxlib. The default install stays TensorFlow-only.
$(JAX_STAMP): $(STAMP) pyproject.toml
	@echo "skinexp: installing the jax extra into $(VENV)"
	@$(PY) -m pip install -qq -e '.[$(EXTRAS),jax]'
	@touch $(JAX_STAMP)

install-jax: $(JAX_STAMP)  ## add the JAX backend (jax and its CPU jaxlib)

gpu-check-sim: $(STAMP)  ## the GPU check in a copy of the GPU image's Python (no TensorFlow), on this CPU
	PYTHON=$(PY) benchmarks/gpu_check_sim.sh

train: $(STAMP)  ## train the default experiment (synthetic data) into runs/; extra overrides via ARGS="..."
	$(PY) -m skinexp train $(ARGS)

# Two workers: each imports TensorFlow once, and tiny trainings leave a core idle between their graph builds.
# --dist loadgroup: the tests of one xdist_group (a shared server, Slurm, module fixture) run in one worker.
XDIST := -n 2 --dist loadgroup
test: $(STAMP)  ## the default (fast) test suite, in two worker processes
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# What the slow tests need from the machine (installed as root when missing): Debian's chromium for the browser
# tests, postgresql for the tracking-server tests, Slurm with munge, slurmdbd and MariaDB for the Slurm tests.
SLURM_PACKAGES := slurmctld slurmd slurm-client slurmdbd munge mariadb-server
test-deps: $(SERVER_STAMP) postgres  ## install the system packages the slow tests use (as root; says what to do otherwise)
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing and this is not root: the browser tests will skip (apt-get install chromium)"; fi
	@if (for tool in slurmctld slurmd sbatch slurmdbd munged mariadbd; do \
		PATH=$$PATH:/usr/sbin command -v $$tool >/dev/null || exit 1; done); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $(SLURM_PACKAGES) for the Slurm tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null 2>&1 || \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null; }; \
	else echo "Slurm is missing and this is not root: the Slurm tests will skip (apt-get install $(SLURM_PACKAGES))"; fi

test-slow: $(STAMP) $(JAX_STAMP) test-deps  ## slow, real-data and JAX tests only, in two worker processes
	$(PY) -m pytest $(XDIST) -m "slow or real_data or jax" $(PYTEST_ARGS)

test-all: $(STAMP) $(JAX_STAMP) test-deps
	$(PY) -m pytest $(XDIST) -m "" $(PYTEST_ARGS)

# The team server: the `server` extra (mlflow[auth], psycopg) and Debian's postgresql for its private database.
$(SERVER_STAMP): $(STAMP) pyproject.toml
	@$(PY) -m pip install -qq -e '.[$(EXTRAS),server]'
	@touch $(SERVER_STAMP)

postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql for the tracking server's database"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || \
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; \
	else echo "PostgreSQL is missing and this is not root: install it (sudo apt-get install postgresql), or run" \
		"the server with database=postgresql://user:password@host:port/db"; fi

install-server: $(SERVER_STAMP) postgres  ## what the team server needs: the `server` extra and Debian's postgresql

server: install-server  ## the team tracking server on 127.0.0.1:5000 (SKINEXP_SERVER_ADMIN_PASSWORD; ARGS="port=5001 ...")
	$(PY) -m skinexp server $(ARGS)

slurm-up:  ## a one-node Slurm on this machine for trials and tests (root; state in runs/slurm)
	scripts/slurm-up

slurm-down:  ## stop it and put back /etc/slurm/slurm.conf
	scripts/slurm-down

bench-server: install-server  ## metrics/s through the team server vs a local SQLite store (about 2 minutes)
	$(PY) benchmarks/server.py

ui: $(STAMP)  ## MLflow UI on 127.0.0.1:$(UI_PORT) over runs/mlflow.db
	$(PY) -m skinexp ui port=$(UI_PORT)

sweep: $(STAMP)  ## a small example sweep on synthetic data, then its leaderboard
	$(PY) -m skinexp train -m model.filters=8,16 optim.lr=1e-3,3e-3 train.epochs=3 dataset.image_size=64
	$(PY) -m skinexp compare

bench: $(STAMP)  ## throughput, start-up and memory against the notebook's approach (about 10 minutes)
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/memory.py

bench-quality: $(STAMP)  ## quality over time on the real images (about 45 minutes on 2 cores; writes docs/quality_over_time.*)
	$(PY) benchmarks/quality.py

bench-backends: $(JAX_STAMP)  ## the same training on TensorFlow and on JAX, img/s and their ratio (about 5 minutes)
	$(PY) benchmarks/backends.py

bench-precision: $(STAMP)  ## float32 against mixed_bfloat16 on the real images, 3 seeds each, compared (about 15 minutes)
	$(PY) benchmarks/precision.py

bench-serve: $(STAMP)  ## REST endpoint latency vs predict in-process, one 600x450 JPEG per request (about 3 minutes)
	$(PY) benchmarks/serve.py

docs:  ## render docs/benchmarks.md and the README's benchmark table from the benchmarks' JSON in docs/
	python3 benchmarks/render_docs.py

docs-check:  ## fail when a figure in the docs differs from its JSON, a relative link is broken, or a figure is typed
	python3 benchmarks/render_docs.py --check

lint: $(STAMP)
	$(PY) -m pip install --quiet ruff
	$(PY) -m ruff check skinexp tests benchmarks scripts

clean:  ## build leftovers and caches; never runs/ (your experiments) or .venv
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
