"""The GPU check: the notebook's U-Net (`model=unet_seed`) trained by skinexp on JAX with mixed_bfloat16 and XLA,
on synthetic images, into a local SQLite store; then what the GPU achieved.

Prints img/s (median of the epochs after the warm-up epoch, which compiles; skinexp's own `images_per_sec`
metric, read back from the store), the model's training FLOPs per image (counted from its layers by
`skinexp.model.flops`), the achieved TFLOP/s and its fraction of the peak (`--peak`, default the H200's bf16
dense ~790 TFLOP/s), and the device's peak memory. Run it through `benchmarks/gpu_check.sh`, which installs
what the GPU machine lacks from wheels first. Writes `gpu_check.json` into `--out` (default $OUT, else
`runs/gpu_check/` under the working folder).

    python benchmarks/gpu_check.py [--size 256] [--images 2000] [--batch 64] [--epochs 6] [--peak 790]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import metadata, spread, write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=2000, help="synthetic images (80 %% train)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6, help="the first is the warm-up")
    parser.add_argument("--peak", type=float, default=790.0, help="the device's bf16 dense peak, TFLOP/s")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_check"))
    parser.add_argument("--compute-steps", type=int, default=20,
                        help="timed forward+backward steps on one batch already on the device (0: skip)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first one compiles")
    meta = metadata(args.epochs - 1)  # before Hydra rewrites sys.argv; the repeats are the timed epochs

    os.environ["KERAS_BACKEND"] = "jax"
    import jax

    from skinexp.__main__ import main as skinexp_main

    workdir = Path(tempfile.mkdtemp(prefix="skinexp-gpu-check-"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    overrides = ["model=unet_seed", f"dataset.image_size={args.size}", f"dataset.num_samples={args.images}",
                 "dataset.test_split=0", f"train.batch_size={args.batch}", f"train.epochs={args.epochs}",
                 "train.backend=jax", f"train.precision={args.precision}", "train.jit_compile=true",
                 f"train.sample_every={args.epochs}", "train.verbose=2", "tracking.log_model=false",
                 f"tracking.uri={uri}", "tracking.experiment=gpu_check"]
    print(f"devices: {jax.devices()}", flush=True)
    started = time.perf_counter()
    previous = Path.cwd()
    os.chdir(workdir)
    try:
        code = skinexp_main(["train", *overrides])
    finally:
        os.chdir(previous)
    if code != 0:
        print(f"gpu check: the training failed (exit {code})", file=sys.stderr)
        return code
    wall = time.perf_counter() - started

    import mlflow

    from skinexp.config.compose import compose
    from skinexp.model.flops import training_flops_per_image
    from skinexp.model.unet import build_unet

    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gpu_check").experiment_id])
    rates = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "images_per_sec"),
                                     key=lambda m: m.step)]
    cfg = compose("train", overrides)
    flops = training_flops_per_image(build_unet(cfg.model, args.size))
    precision = run.data.params["train.precision"]
    compute_img_s = compute_only_rate(cfg.model, args, precision) if args.compute_steps else None
    timed = rates[1:]
    img_s = statistics.median(timed)
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    result = {
        "meta": meta, "device": str(device), "platform": device.platform, "jax": jax.__version__,
        "run_id": run.info.run_id, "image_size": args.size, "batch": args.batch,
        "train_images_per_epoch": int(args.images * 0.8), "epochs": args.epochs, "precision": precision,
        "img_s_per_epoch": rates, "img_s_median_after_warmup": img_s, "img_s_range": [min(timed), max(timed)],
        "training_gflop_per_image": flops / 1e9, "achieved_tflop_s": img_s * flops / 1e12,
        "fraction_of_peak": img_s * flops / 1e12 / args.peak, "peak_tflop_s": args.peak,
        "peak_memory_gib": stats.get("peak_bytes_in_use", 0) / 2**30 if stats else None,
        "compute_only_img_s": compute_img_s,
        "img_s_spread": spread(timed), "wall_seconds": wall,
    }
    print(f"gpu check on {device} (JAX {jax.__version__}), model=unet_seed at {args.size} px, batch {args.batch}, "
          f"{result['precision']}, XLA")
    print(f"  img/s after warm-up: {img_s:.1f} (epochs 2..{args.epochs}: {min(timed):.1f}..{max(timed):.1f}); "
          f"warm-up epoch {rates[0]:.1f}")
    print(f"  training FLOPs per image: {flops / 1e9:.1f} GFLOP (counted from the layers)")
    print(f"  achieved: {result['achieved_tflop_s']:.2f} TFLOP/s, {result['fraction_of_peak']:.1%} of "
          f"{args.peak:.0f} TFLOP/s")
    memory = result["peak_memory_gib"]
    print(f"  peak device memory: {memory:.2f} GiB" if memory is not None else
          "  peak device memory: not reported by this device")
    if compute_img_s:
        print(f"  compute only (forward+backward on a batch already on the device): {compute_img_s:.1f} img/s; "
              f"fit reaches {img_s / compute_img_s:.0%} of it")
    print(f"  wall time of the training command: {wall:.0f} s")
    write("gpu_check", result, Path(args.out))
    return 0


def compute_only_rate(model_cfg, args, precision: str) -> float:
    """Images per second of the model's forward and backward pass alone, on one batch resident on the device: the
    ceiling that `fit` would reach with a free input pipeline and no optimizer step (median of the timed steps)."""
    import jax
    import keras
    import numpy as np

    from skinexp.model.unet import build_unet

    keras.mixed_precision.set_global_policy(precision)
    model = build_unet(model_cfg, args.size)
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype(np.float32))
    masks = jax.device_put((rng.uniform(size=(args.batch, args.size, args.size, 1)) > 0.7).astype(np.float32))
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def loss(trainable, frozen, images, masks):
        predictions, frozen = model.stateless_call(trainable, frozen, images, training=True)
        return keras.ops.mean(keras.losses.binary_crossentropy(masks, predictions)), frozen

    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    jax.block_until_ready(step(trainable, frozen, images, masks))  # compiles
    seconds = []
    for _ in range(args.compute_steps):
        started = time.perf_counter()
        jax.block_until_ready(step(trainable, frozen, images, masks))
        seconds.append(time.perf_counter() - started)
    return args.batch / statistics.median(seconds)


if __name__ == "__main__":
    sys.exit(main())
