#!/usr/bin/env bash
# One device session of the GPU issue, prepared to fit a short lease: the GPU check (the seed U-Net at 256 px, JAX,
# bf16, XLA) at batch 64 and 128, then `+experiment=isic_gpu` on the real images (a copy in .gpu-data/isic-real,
# ignored) on JAX, and its held-out (test split) evaluation. Everything lands in $OUT:
#   b64/gpu_check.json, b128/gpu_check.json, isic_gpu_eval.json, isic_gpu_history.json, session.log
# Run there as: benchmarks/gpu_session.sh   (carry .gpu-wheels and .gpu-data)
# Rehearse here, tiny:  PYTHON=.venv/bin/python REHEARSE=1 benchmarks/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
PYTHON=${PYTHON:-python3}
export PYTHON
started=$(date +%s)
check=(--size 256 --images 2000 --epochs 6)
recipe=()
if [ -n "${REHEARSE:-}" ]; then
  check=(--size 32 --images 40 --epochs 2 --compute-steps 2)
  recipe=(dataset.image_size=32 model.depth=2 model.filters=4 train.budget.minutes=0.3 train.steps_per_execution=1)
fi
elapsed() { echo "[$(( $(date +%s) - started )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
grep -m1 'model name' /proc/cpuinfo; nproc

elapsed "gpu check, batch 64"
benchmarks/gpu_check.sh "${check[@]}" --batch 64 --out "$OUT/b64" | grep -v '^Epoch\|step -'

TARGET=/tmp/skinexp-gpu-site
export PYTHONPATH="$PWD:$TARGET"
STORE=/tmp/skinexp-gpu-mlflow/$started
mkdir -p "$STORE"
elapsed "isic_gpu on the real images"
timeout 330 "$PYTHON" -m skinexp train +experiment=isic_gpu dataset.root=.gpu-data/isic-real train.backend=jax "${recipe[@]}" \
  train.verbose=2 tracking.log_model=false "tracking.uri=sqlite:///$STORE/mlflow.db" hydra.run.dir=/tmp/isic_gpu_run/$started
echo "train exit: $?"
run_id=$("$PYTHON" - "$STORE" "$OUT" <<'PY'
import json, sys
import mlflow
client = mlflow.MlflowClient(f"sqlite:///{sys.argv[1]}/mlflow.db")
(run,) = client.search_runs([client.get_experiment_by_name("isic").experiment_id], max_results=1)
history = {key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
           for key in ("loss", "val_loss", "val_iou", "images_per_sec", "epoch_seconds")}
json.dump({"run_id": run.info.run_id, "status": run.info.status, "params": run.data.params,
           "metrics": run.data.metrics, "history": history}, open(f"{sys.argv[2]}/isic_gpu_history.json", "w"), indent=1)
print(run.info.run_id)
PY
)
elapsed "held-out evaluation of $run_id"
"$PYTHON" -m skinexp evaluate "run=$run_id" split=test "tracking.uri=sqlite:///$STORE/mlflow.db" \
  hydra.run.dir=/tmp/isic_gpu_eval/$started && cp /tmp/isic_gpu_eval/$started/summary.json "$OUT/isic_gpu_eval.json"

if [ $(( $(date +%s) - started )) -lt 420 ]; then
  elapsed "gpu check, batch 128"
  benchmarks/gpu_check.sh "${check[@]}" --batch 128 --out "$OUT/b128" | grep -v '^Epoch\|step -'
fi
elapsed "done"
