"""Training throughput: the notebook's loop against skinexp, same model, data and batch, and this machine's limit.

Sides (each measurement a fresh process: one warm-up epoch for tracing and compilation, then timed epochs):
  notebook           the whole set as float32 NumPy arrays into `model.fit(x, y, batch_size)`, Adam, BCE, accuracy
  skinexp float32    skinexp's input pipeline (uint8 batches gathered by index, cast in graph, prefetched) and its
                     compiled model (metrics accuracy, iou, miou, dice), `train.precision=float32`
  skinexp auto       the same with `train.precision=auto` (skinexp's default: bf16 where the hardware has it)
  skinexp auto + XLA the same with `train.jit_compile=true`
  pipeline only      skinexp's training dataset with `augment=light` iterated with no model (it must outrun training)
  probes             a 3x3, 64-channel convolution (batch 8, 128 px) in float32 and in bfloat16, in GFLOP/s: the limit

Workloads: `synthetic` (the default 16-filter U-Net, 128 px, batch 8, synthetic images) and `real` (the notebook's
U-Net, `model=unet_seed` at filters 8, 128 px, batch 4, the real ISIC/PH2 images; skipped when they are absent).
Every round runs each (workload, side) once, in the same order (A, B, C, ..., A, B, C, ...), `--repeats` rounds.
Prints the median and the range of each side, its ratio to the notebook (median of the per-round ratios), and the
fraction of the machine's limit (training FLOPs per image, counted from the layers, times img/s, over the faster
probe). Writes the numbers to `docs/throughput.json` (`--out` names another folder).

    python benchmarks/throughput.py [--repeats 3] [--images 192] [--epochs 2] [--workloads synthetic,real]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import DOCS, metadata, write

REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic-real"
WORKLOADS = {
    "synthetic": {"model": "unet", "filters": 16, "size": 128, "batch": 8},
    "real": {"model": "unet_seed", "filters": 8, "size": 128, "batch": 4},
}
SIDES = {
    "notebook (float32 arrays into fit)": {"mode": "notebook"},
    "skinexp float32": {"mode": "skinexp", "precision": "float32", "jit_compile": False},
    "skinexp auto (default)": {"mode": "skinexp", "precision": "auto", "jit_compile": False},
    "skinexp auto + XLA": {"mode": "skinexp", "precision": "auto", "jit_compile": True},
    "pipeline only (augment=light, no model)": {"mode": "pipeline"},
}
BASELINE = next(iter(SIDES))
DEFAULT_SIDE = "skinexp auto (default)"
PROBE = {"batch": 8, "size": 128, "channels": 64, "kernel": 3, "iterations": 10}


def _model(options: dict):
    from skinexp.config.compose import compose
    from skinexp.model.unet import build_unet

    cfg = compose("train", [f"model={options['model']}", f"model.filters={options['filters']}",
                            f"dataset.image_size={options['size']}"])
    return cfg, build_unet(cfg.model, options["size"])


def measure(options: dict) -> dict:
    """Inside a fresh process: one side on one workload; returns img/s (and what it ran as)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from skinexp.data.types import Split

    data = np.load(options["data"])
    images, masks = data["images"], data["masks"]
    split = Split(images, masks, [str(index) for index in range(len(images))])
    batch, epochs = options["batch"], options["epochs"]
    if options["mode"] == "pipeline":
        from skinexp.config.compose import compose
        from skinexp.data.pipeline import make_dataset

        augment_cfg = compose("train", ["augment=light"]).augment
        dataset = make_dataset(split, batch, training=True, seed=0, augment_cfg=augment_cfg)
        for _ in dataset:  # warm-up: tracing
            pass
        start = time.perf_counter()
        for _ in range(epochs):
            for _ in dataset:
                pass
        return {"img_s": epochs * len(images) / (time.perf_counter() - start)}

    from skinexp.training.runtime import resolve_precision

    keras.utils.set_random_seed(0)
    backend = keras.backend.backend()
    precision = "float32" if options["mode"] == "notebook" else resolve_precision(options["precision"], backend)[0]
    keras.mixed_precision.set_global_policy(precision)
    cfg, model = _model(options)
    from skinexp.model.flops import training_flops_per_image

    flops = training_flops_per_image(model)
    if options["mode"] == "notebook":
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
        x, y = images.astype("float32"), masks.astype("float32")

        def run(count):
            model.fit(x, y, batch_size=batch, epochs=count, shuffle=True, verbose=0)
    else:
        from skinexp.data.pipeline import make_dataset
        from skinexp.model.losses import build_loss
        from skinexp.model.metrics import training_metrics
        from skinexp.model.optim import build_optimizer

        steps = -(-len(images) // batch)
        model.compile(optimizer=build_optimizer(cfg.optim, steps, steps * (epochs + 1)), loss=build_loss(cfg.loss),
                      metrics=training_metrics(), jit_compile=options["jit_compile"])
        dataset = make_dataset(split, batch, training=True, seed=0)

        def run(count):
            model.fit(dataset, epochs=count, verbose=0)
    run(1)  # warm-up: tracing and compilation
    start = time.perf_counter()
    run(epochs)
    return {"img_s": epochs * len(images) / (time.perf_counter() - start), "precision": precision,
            "training_flops_per_image": flops}


def probe() -> dict:
    """Inside a fresh process: GFLOP/s of one convolution in float32 and in bfloat16 (forward, compiled)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    shape = (PROBE["batch"], PROBE["size"], PROBE["size"], PROBE["channels"])
    kernel_shape = (PROBE["kernel"], PROBE["kernel"], PROBE["channels"], PROBE["channels"])
    flops = 2 * PROBE["batch"] * PROBE["size"] ** 2 * PROBE["kernel"] ** 2 * PROBE["channels"] ** 2
    result = {}
    for dtype in ("float32", "bfloat16"):
        inputs = keras.ops.cast(keras.random.normal(shape, seed=0), dtype)
        kernel = keras.ops.cast(keras.random.normal(kernel_shape, seed=1), dtype)
        convolve = _compiled(lambda a, b: keras.ops.conv(a, b, padding="same"))
        keras.ops.convert_to_numpy(convolve(inputs, kernel))
        start = time.perf_counter()
        for _ in range(PROBE["iterations"]):
            output = convolve(inputs, kernel)
        keras.ops.convert_to_numpy(output)
        result[f"{dtype}_gflop_s"] = flops * PROBE["iterations"] / (time.perf_counter() - start) / 1e9
    return result


def _compiled(function):
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(function)
    import jax

    return jax.jit(function)


def write_data(workload: str, count: int, folder: Path) -> Path | None:
    """The workload's images as uint8 arrays in an .npz (the same pixels for every side); None without them."""
    import numpy as np

    spec = WORKLOADS[workload]
    if workload == "synthetic":
        from skinexp.data.synthetic import make_synthetic

        images, masks = make_synthetic(count, spec["size"], seed=0)
    else:
        root = Path(os.environ.get("SKINEXP_REAL_DATA", REAL_ROOT))
        if not (root / "images").is_dir():
            print(f"skipping the real workload: no images under {root}", file=sys.stderr)
            return None
        from skinexp.config.compose import compose
        from skinexp.data.sources import load_splits

        cfg = compose("train", ["dataset=isic_real", f"dataset.root={root}", f"dataset.image_size={spec['size']}",
                                "dataset.val_split=0.1"])
        train = load_splits(cfg.dataset).train
        images, masks = np.asarray(train.images[:count]), np.asarray(train.masks[:count])
    path = folder / f"{workload}.npz"
    np.savez(path, images=images, masks=masks)
    return path


def _child(payload: dict) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", json.dumps(payload)], capture_output=True,
                            text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    parser.add_argument("--workloads", default="synthetic,real")
    parser.add_argument("--out", type=Path, default=DOCS, help="the folder of throughput.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        payload = json.loads(args.child)
        print(json.dumps(probe() if payload.get("probe") else measure(payload)))
        return
    meta = metadata(args.repeats)

    scratch = Path(tempfile.mkdtemp(prefix="skinexp-throughput-"))
    data = {name: write_data(name, args.images, scratch) for name in args.workloads.split(",")}
    data = {name: path for name, path in data.items() if path is not None}
    samples: dict = {"probe": []}
    for name in data:
        samples[name] = {side: [] for side in SIDES}
    for round_number in range(args.repeats):
        samples["probe"].append(_child({"probe": True}))
        for name, path in data.items():
            for side, options in SIDES.items():
                result = _child({**WORKLOADS[name], **options, "data": str(path), "epochs": args.epochs})
                samples[name][side].append(result)
                print(f"round {round_number + 1}: {name} / {side}: {result['img_s']:.2f} img/s", file=sys.stderr)
    summary = summarise(samples, data)
    report(summary, args)
    arguments = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    write("throughput", {"meta": meta, "args": arguments, "samples": samples, "summary": summary}, args.out)


def summarise(samples: dict, data: dict) -> dict:
    probes = samples["probe"]
    limits = {dtype: statistics.median(p[f"{dtype}_gflop_s"] for p in probes) for dtype in ("float32", "bfloat16")}
    summary = {"probe_gflop_s": {dtype: {"median": value, "min": min(p[f"{dtype}_gflop_s"] for p in probes),
                                         "max": max(p[f"{dtype}_gflop_s"] for p in probes)}
                                 for dtype, value in limits.items()},
               "limit_gflop_s": max(limits.values()), "workloads": {}}
    for name in data:
        runs = samples[name]
        baseline = [r["img_s"] for r in runs[BASELINE]]
        rows = {}
        for side, results in runs.items():
            rates = [r["img_s"] for r in results]
            row = {"median_img_s": statistics.median(rates), "min_img_s": min(rates), "max_img_s": max(rates),
                   "vs_notebook": statistics.median(rate / base for rate, base in zip(rates, baseline))}
            if "training_flops_per_image" in results[0]:
                flops = results[0]["training_flops_per_image"]
                row.update(precision=results[0]["precision"], training_gflop_per_image=flops / 1e9,
                           achieved_gflop_s=row["median_img_s"] * flops / 1e9)
                row["fraction_of_limit"] = row["achieved_gflop_s"] / summary["limit_gflop_s"]
            rows[side] = row
        summary["workloads"][name] = rows
    return summary


def report(summary: dict, args) -> None:
    probes = summary["probe_gflop_s"]
    print(f"limit: 3x3 64-channel convolution {probes['float32']['median']:.0f} GFLOP/s in float32 "
          f"({probes['float32']['min']:.0f}..{probes['float32']['max']:.0f}), {probes['bfloat16']['median']:.0f} "
          f"in bfloat16 ({probes['bfloat16']['min']:.0f}..{probes['bfloat16']['max']:.0f}); {args.repeats} rounds, "
          f"{args.images} images, {args.epochs} timed epochs after 1 warm-up, each side in a fresh process")
    for name, rows in summary["workloads"].items():
        spec = WORKLOADS[name]
        flops = next(row["training_gflop_per_image"] for row in rows.values() if "training_gflop_per_image" in row)
        print(f"\n{name}: model={spec['model']} filters={spec['filters']}, {spec['size']} px, batch {spec['batch']}, "
              f"{flops:.2f} training GFLOP per image")
        print("| side | precision | img/s (median) | range | vs notebook | GFLOP/s | of the limit |")
        print("|---|---|---|---|---|---|---|")
        for side, row in rows.items():
            share = f"{row['achieved_gflop_s']:.0f} | {row['fraction_of_limit']:.0%}" if "achieved_gflop_s" in row \
                else "- | -"
            print(f"| {side} | {row.get('precision', '-')} | {row['median_img_s']:.2f} | {row['min_img_s']:.2f}.."
                  f"{row['max_img_s']:.2f} | {row['vs_notebook']:.2f}x | {share} |")
        pipeline = rows["pipeline only (augment=light, no model)"]["median_img_s"]
        print(f"pipeline only / skinexp default training: {pipeline / rows[DEFAULT_SIDE]['median_img_s']:.1f}x")


if __name__ == "__main__":
    main()
