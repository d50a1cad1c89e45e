"""Training throughput: the notebook's loop vs skinexp's pipeline, same model, data and batch size.

The notebook converts the whole set to float32 NumPy arrays and calls `model.fit(x, y, batch_size)`.
skinexp feeds uint8 batches through tf.data (cast in graph, prefetched) and, with the isic_cpu settings,
compiles with XLA (`train.jit_compile=true`) and several steps per execution. Each side runs in its own
fresh process: one warm-up epoch (tracing, compilation), then timed epochs. Prints img/s and the ratio.

    python benchmarks/throughput.py [--images 192] [--size 128] [--filters 16] [--batch 8] [--epochs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SIDES = {
    "notebook (float32 arrays into fit)": {"mode": "notebook"},
    "skinexp pipeline": {"mode": "skinexp", "jit_compile": False, "steps_per_execution": 1},
    "skinexp pipeline + XLA + 8 steps/execution": {"mode": "skinexp", "jit_compile": True, "steps_per_execution": 8},
}


def measure(options: dict) -> float:
    """Run inside a fresh process: train and return timed images per second."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from omegaconf import OmegaConf

    from skinexp.config.schema import ModelConfig
    from skinexp.data import Split
    from skinexp.data.pipeline import make_dataset
    from skinexp.data.synthetic import make_synthetic
    from skinexp.models.unet import build_unet

    keras.utils.set_random_seed(0)
    images, masks = make_synthetic(options["images"], options["size"], seed=0)
    model = build_unet(OmegaConf.structured(ModelConfig(filters=options["filters"])), options["size"])
    compile_args = {"optimizer": keras.optimizers.Adam(1e-4), "loss": "binary_crossentropy", "metrics": ["accuracy"]}
    batch = options["batch"]
    if options["mode"] == "notebook":
        model.compile(**compile_args)
        x, y = images.astype("float32"), masks.astype("float32")

        def epoch(count):
            model.fit(x, y, batch_size=batch, epochs=count, shuffle=True, verbose=0)
    else:
        model.compile(**compile_args, jit_compile=options["jit_compile"],
                      steps_per_execution=options["steps_per_execution"])
        data = make_dataset(Split(images, masks, []), batch, training=True, seed=0)

        def epoch(count):
            model.fit(data, epochs=count, verbose=0)
    epoch(1)  # warm-up: tracing and compilation
    start = time.perf_counter()
    epoch(options["epochs"])
    return options["epochs"] * len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    common = {"images": args.images, "size": args.size, "filters": args.filters, "batch": args.batch,
              "epochs": args.epochs}
    results = {}
    for name, side in SIDES.items():
        output = subprocess.run([sys.executable, __file__, "--child", json.dumps({**common, **side})],
                                capture_output=True, text=True, check=True).stdout
        results[name] = float(output.strip().splitlines()[-1])
    baseline = results[next(iter(SIDES))]
    print(f"throughput, {args.images} synthetic images at {args.size} px, U-Net filters={args.filters}, "
          f"batch {args.batch}, {args.epochs} timed epochs after 1 warm-up")
    print("| side | img/s | vs notebook |\n|---|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:.2f} | {value / baseline:.2f}x |")


if __name__ == "__main__":
    main()
