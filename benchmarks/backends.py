"""The same training on TensorFlow and on JAX: img/s of each backend and their ratio, on this machine.

The same model (the default 16-filter U-Net), the same synthetic images at 128 px, batch 8, `train.precision=auto`
and XLA (`jit_compile=True`) on both; each measurement in a fresh process with `KERAS_BACKEND` set, one warm-up
epoch (tracing, compilation), then timed epochs, through skinexp's own input pipeline for that backend (tf.data;
PyDataset). Repeated `--repeats` times, interleaved (TF, JAX, TF, JAX, ...); prints the median, the range and the
median of the per-round ratios. Writes the numbers to `docs/backends.json` (`--out` names another folder).

    python benchmarks/backends.py [--repeats 3] [--images 96] [--epochs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import DOCS, metadata, spread, write
from throughput import WORKLOADS, write_data

BACKENDS = ("tensorflow", "jax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    parser.add_argument("--out", type=Path, default=DOCS, help="the folder of backends.json")
    args = parser.parse_args()
    meta = metadata(args.repeats)
    data = write_data("synthetic", args.images, Path(tempfile.mkdtemp(prefix="skinexp-backends-")))
    payload = {**WORKLOADS["synthetic"], "mode": "skinexp", "precision": "auto", "jit_compile": True,
               "data": str(data), "epochs": args.epochs}
    samples = {backend: [] for backend in BACKENDS}
    for round_number in range(args.repeats):
        for backend in BACKENDS:
            env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
            output = subprocess.run([sys.executable, str(Path(__file__).with_name("throughput.py")), "--child",
                                     json.dumps(payload)], capture_output=True, text=True, check=True, env=env).stdout
            result = json.loads(output.strip().splitlines()[-1])
            samples[backend].append(result)
            print(f"round {round_number + 1}: {backend}: {result['img_s']:.2f} img/s", file=sys.stderr)
    rates = {backend: [r["img_s"] for r in results] for backend, results in samples.items()}
    ratios = [j / t for j, t in zip(rates["jax"], rates["tensorflow"])]
    ratio = statistics.median(ratios)
    spec = WORKLOADS["synthetic"]
    print(f"backends: model={spec['model']} filters={spec['filters']}, {spec['size']} px, batch {spec['batch']}, "
          f"{args.images} synthetic images, precision {samples['jax'][0]['precision']}, jit_compile on both, "
          f"{args.repeats} interleaved rounds of {args.epochs} timed epochs after 1 warm-up")
    print("| backend | img/s (median) | range |\n|---|---|---|")
    for backend, values in rates.items():
        print(f"| {backend} | {statistics.median(values):.2f} | {min(values):.2f}..{max(values):.2f} |")
    print(f"JAX / TensorFlow: {ratio:.2f}x (median of the per-round ratios)")
    arguments = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    write("backends", {"meta": meta, "args": arguments, "samples": samples,
                       "img_s": {backend: spread(values) for backend, values in rates.items()},
                       "jax_over_tensorflow": ratio, "jax_over_tensorflow_rounds": ratios}, args.out)


if __name__ == "__main__":
    main()
