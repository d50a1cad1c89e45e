#!/usr/bin/env bash
# The GPU check, ready for a GPU machine that has Python 3.12 and JAX with CUDA but no Keras, Hydra or MLflow, and
# no network. Two steps:
#   benchmarks/gpu_check.sh download   here, with the network: the wheels it lacks into .gpu-wheels/ (<= 64 MiB)
#   benchmarks/gpu_check.sh [ARGS]     there: install those wheels into a folder of its own, then run
#                                      benchmarks/gpu_check.py ARGS (see its --help). Where Keras, Hydra and
#                                      MLflow are importable already (this CPU machine's .venv), it installs nothing:
#                                      PYTHON=.venv/bin/python benchmarks/gpu_check.sh --size 64 --images 20 --batch 4 --epochs 2
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=${WHEELS:-.gpu-wheels}
PYTHON=${PYTHON:-python3}
TARGET=${TARGET:-/tmp/skinexp-gpu-site}
# What the GPU image lacks of skinexp's needs (it has numpy, scipy, pillow, matplotlib, pandas, h5py, rich,
# absl-py, pyyaml, requests, click, protobuf, cloudpickle, jinja2): Keras 3, Hydra, MLflow's client with the
# SQLite store (SQLAlchemy, Alembic, and cryptography, which the store's registry tables import) and what those need.
# A simulation of that machine (a venv with just the image's packages, benchmarks/gpu_check_sim.sh) checks the set.
PACKAGES=(  # the versions this project's CPU install runs with
  keras==3.15.1 namex==0.1.0 optree==0.20.0 hydra-core==1.3.8 omegaconf==2.3.1
  mlflow-skinny==3.17.2 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 sqlparse==0.6.1 cachetools==7.3.3
  gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3 databricks-sdk==0.162.0 google-auth==2.63.0 pyasn1-modules==0.4.2
  pyasn1==0.6.5 fastapi==0.165.0 starlette==1.10.0 uvicorn==0.54.0 pydantic==2.14.4 pydantic-core==2.50.5
  annotated-types==0.8.0 typing-inspection==0.4.5 python-dotenv==1.2.4 importlib-metadata==9.1.0
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2
  opentelemetry-semantic-conventions==0.66b2 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12
)

if [ "${1:-}" = download ]; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "${PACKAGES[@]}"
  # Hydra's parser runtime is published as a source archive only; it is pure Python, so its wheel fits any machine.
  "$PYTHON" -m pip wheel --quiet --no-deps -w "$WHEELS" antlr4-python3-runtime==4.9.3
  du -sh "$WHEELS"
  exit 0
fi

if ! "$PYTHON" -c "import keras, hydra, mlflow, sqlalchemy" 2>/dev/null; then
  [ -d "$WHEELS" ] || { echo "gpu_check: no $WHEELS/ here: run 'benchmarks/gpu_check.sh download' first" >&2; exit 2; }
  echo "gpu_check: installing $(ls "$WHEELS" | wc -l) wheels into $TARGET"
  "$PYTHON" -m pip install --quiet --no-index --no-deps --target "$TARGET" "$WHEELS"/*.whl
  export PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=3
exec "$PYTHON" benchmarks/gpu_check.py "$@"
