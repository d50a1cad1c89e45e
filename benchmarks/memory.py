"""Peak memory of a training epoch at ISIC-2018 scale: skinexp's npy source + tf.data pipeline vs the notebook.

    python benchmarks/memory.py [--steps 50] [--repeats 3] [--sides notebook,skinexp,...] [--keep DIR]

Writes 2,594 images at 256 px in the notebook's .npy layout to a temp dir (data_train 1,815 /
data_val 259 / data_test 520, images uint8 (N, 256, 256, 3), masks uint8 (N, 256, 256) 0/255; the
content is 64 synthetic images repeated, which costs the same memory as real pixels). Then each side
runs in its own fresh Python process and reports its peak resident set size (ru_maxrss):

- notebook: `np.load`, `.astype('float32')`, `/ 255`, `model.fit(arrays, batch_size=4,
  validation_data=(val arrays))`, as the original notebook does;
- skinexp: `load_splits(dataset=npy)` (memory-mapped uint8, masks binarised to uint8) and
  `make_dataset` (index batches gathered from the arrays, cast to float32 in graph), batch 4.
- skinexp-slices (for reference): the same source through `tf.data.Dataset.from_tensor_slices`,
  the pipeline skinexp had before, which copies the arrays into TensorFlow;
- model-only (for reference): TensorFlow, the model and its training steps on 16 images: the floor.

Both sides train the same small U-Net (model.filters=8, model.depth=4: 0.5 M parameters) for the
same number of steps (`--steps`, batch 4, plus steps/5 validation steps) so that this runs in minutes
on two CPU cores: the model and its activations cost the same on both sides, so what differs is the
data handling. With capped steps skinexp touches only the memory-mapped pages of the batches it
reads; a full epoch (`--steps 0`) adds at most the set's uint8 size (about 510 MB of page cache,
counted in RSS but reclaimable).
The goal is skinexp <= 1/3 of the notebook's peak. The sides run in turn, `--repeats` rounds; the median, the
spread and the median of the per-round ratios skinexp / notebook are written to `docs/memory.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import DOCS, metadata, spread, write

COUNTS = {"train": 1815, "val": 259, "test": 520}  # ISIC 2018 as BCDU-Net splits it: 2,594 images
SIZE = 256
BATCH = 4
MODEL = ["model.filters=8", "model.depth=4"]


def write_data(directory: Path, unique: int = 64) -> None:
    """The notebook's files, written a chunk at a time from `unique` synthetic images."""
    from skinexp.data.synthetic import make_synthetic

    images, masks = make_synthetic(unique, SIZE, seed=0)
    for split, count in COUNTS.items():
        data = np.lib.format.open_memmap(directory / f"data_{split}.npy", "w+", np.uint8, (count, SIZE, SIZE, 3))
        mask = np.lib.format.open_memmap(directory / f"mask_{split}.npy", "w+", np.uint8, (count, SIZE, SIZE))
        for start in range(0, count, unique):
            stop = min(start + unique, count)
            data[start:stop] = images[: stop - start]
            mask[start:stop] = masks[: stop - start, ..., 0] * np.uint8(255)
        data.flush()
        mask.flush()
        del data, mask


def _model_and_steps(steps: int):
    import keras

    from skinexp.config.compose import compose
    from skinexp.model.unet import build_unet

    keras.utils.set_random_seed(0)
    cfg = compose("train", MODEL + [f"dataset.image_size={SIZE}"])
    model = build_unet(cfg.model, SIZE)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", metrics=["accuracy"])
    fit_steps = {"steps_per_epoch": steps, "validation_steps": max(1, steps // 5)} if steps else {}
    return model, fit_steps


def run_notebook(data: Path, steps: int) -> None:
    train_x = np.load(data / "data_train.npy").astype("float32") / 255.0
    train_y = np.expand_dims(np.load(data / "mask_train.npy"), axis=3).astype("float32") / 255.0
    val_x = np.load(data / "data_val.npy").astype("float32") / 255.0
    val_y = np.expand_dims(np.load(data / "mask_val.npy"), axis=3).astype("float32") / 255.0
    model, fit_steps = _model_and_steps(steps)
    model.fit(train_x, train_y, batch_size=BATCH, epochs=1, validation_data=(val_x, val_y), shuffle=True,
              verbose=0, **fit_steps)


def run_skinexp(data: Path, steps: int, slices: bool = False) -> None:
    import tensorflow as tf

    from skinexp.config.compose import compose
    from skinexp.data import load_splits
    from skinexp.data.pipeline import make_dataset

    cfg = compose("train", ["dataset=npy", f"dataset.root={data}", f"dataset.image_size={SIZE}"])
    splits = load_splits(cfg.dataset)
    if slices:
        def pipeline(split, training):
            dataset = tf.data.Dataset.from_tensor_slices((split.images, split.masks))
            dataset = dataset.shuffle(len(split), seed=0) if training else dataset
            return dataset.batch(BATCH).map(lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.float32)))
    else:
        def pipeline(split, training):
            return make_dataset(split, BATCH, training=training, seed=0)
    model, fit_steps = _model_and_steps(steps)
    train_data = pipeline(splits.train, True)
    val_data = pipeline(splits.val, False)
    if steps:  # Keras stops at steps_per_epoch; repeat so a capped epoch never runs dry
        train_data, val_data = train_data.repeat(), val_data.repeat()
    model.fit(train_data, validation_data=val_data, epochs=1, verbose=0, **fit_steps)


def run_model_only(data: Path, steps: int) -> None:
    """What neither side can avoid: TensorFlow, the model and its training step, on 16 in-memory images."""
    images = np.load(data / "data_val.npy", mmap_mode="r")[:16].astype("float32")
    masks = np.load(data / "mask_val.npy", mmap_mode="r")[:16, ..., None].astype("float32") / 255.0
    model, fit_steps = _model_and_steps(steps)
    fit_steps.pop("validation_steps", None)
    dataset = __import__("tensorflow").data.Dataset.from_tensor_slices((images, masks)).batch(BATCH).repeat()
    model.fit(dataset, epochs=1, verbose=0, steps_per_epoch=fit_steps.get("steps_per_epoch", 16))


SIDES = {"notebook": run_notebook, "skinexp": run_skinexp,
         "skinexp-slices": lambda data, steps: run_skinexp(data, steps, slices=True), "model-only": run_model_only}


def measure(side: str, data: Path, steps: int) -> dict:
    """Run one side in a fresh interpreter; its peak RSS in MiB and its wall time."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--side", side, "--data", str(data), "--steps", str(steps)],
                            capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{side} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return {**report, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per side (0: a full epoch)")
    parser.add_argument("--sides", default="notebook,skinexp,skinexp-slices,model-only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write (or reuse) the .npy files here instead of a temp dir")
    parser.add_argument("--out", type=Path, default=DOCS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # a measuring child: run, then print its own peak
        SIDES[args.side](args.data, args.steps)
        print(json.dumps({"side": args.side, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return

    meta = metadata(args.repeats)
    sides = args.sides.split(",")
    samples: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="skinexp-memory-") as temporary:
        data = args.keep or Path(temporary)
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "data_test.npy").exists():
            write_data(data)
        gib = sum(f.stat().st_size for f in data.glob("*.npy")) / 2**30
        print(f"{sum(COUNTS.values())} images at {SIZE} px in .npy files ({gib:.2f} GiB uint8); "
              f"{args.steps or 'a full epoch of'} steps, batch {BATCH}, {' '.join(MODEL)}; {args.repeats} rounds")
        for _ in range(args.repeats):
            for side in sides:
                samples[side].append(measure(side, data, args.steps))
                print(f"{side:15s} peak RSS {samples[side][-1]['peak_mib']:8.0f} MiB   "
                      f"({samples[side][-1]['seconds']:.0f} s)", flush=True)
    result = {"meta": meta, "images": sum(COUNTS.values()), "image_size": SIZE, "data_gib": gib, "steps": args.steps,
              "batch": BATCH, "model": MODEL, "goal": "skinexp / notebook <= 1/3",
              "sides": {side: {"peak_mib": spread([r["peak_mib"] for r in runs]),
                               "seconds": spread([r["seconds"] for r in runs])} for side, runs in samples.items()}}
    if "notebook" in samples and "skinexp" in samples:
        ratios = [ours["peak_mib"] / theirs["peak_mib"]
                  for ours, theirs in zip(samples["skinexp"], samples["notebook"])]
        result["skinexp_over_notebook"] = spread(ratios)
        print(f"skinexp / notebook = {result['skinexp_over_notebook']['median']:.2f} "
              f"(goal <= 0.33: {'met' if max(ratios) <= 1 / 3 else 'NOT met'})")
    write("memory", result, args.out)


if __name__ == "__main__":
    main()
