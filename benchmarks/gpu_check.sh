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
WHEELS=.gpu-wheels
PYTHON=${PYTHON:-python3}
TARGET=${TARGET:-/tmp/skinexp-gpu-site}
# What the GPU image lacks of skinexp's needs (it has numpy, scipy, pillow, matplotlib, pandas, h5py, rich,
# absl-py, pyyaml, requests, click, protobuf, cloudpickle, jinja2): Keras 3, Hydra, MLflow's client with the
# SQLite store (SQLAlchemy, Alembic) and what those need.
PACKAGES=(
  keras==3.15.* namex optree
  hydra-core==1.3.8 omegaconf==2.3.* antlr4-python3-runtime==4.9.3
  mlflow-skinny==3.17.2 sqlalchemy alembic mako greenlet sqlparse cachetools gitpython gitdb smmap
  databricks-sdk google-auth pyasn1-modules pyasn1 rsa fastapi starlette uvicorn pydantic pydantic-core
  annotated-types typing-inspection python-dotenv importlib-metadata opentelemetry-api opentelemetry-sdk
  opentelemetry-proto opentelemetry-semantic-conventions
)

if [ "${1:-}" = download ]; then
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "${PACKAGES[@]}"
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
