"""Start-up: `python -m skinexp --help` and a rejected override must answer in under 1.5 s.

Neither path may import TensorFlow. Each command runs in a fresh process, `--repeats` rounds, the commands
interleaved within a round (so a busy moment of a shared machine hits them all); the median, the spread and
the median of the per-round ratios to `import tensorflow` (the baseline those paths avoid) are reported and
written to `docs/startup.json`.

    python benchmarks/startup.py [--repeats 5] [--out docs]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import DOCS, metadata, spread, write

GOAL_SECONDS = 1.5
BASELINE = "python -c 'import tensorflow'"
WITH_GOAL = ("python -m skinexp --help", "python -m skinexp train model.filters=0 (rejected)")
COMMANDS = {
    "python -m skinexp --help": [sys.executable, "-m", "skinexp", "--help"],
    "python -m skinexp train model.filters=0 (rejected)": [sys.executable, "-m", "skinexp", "train", "model.filters=0"],
    "python -m skinexp train --help": [sys.executable, "-m", "skinexp", "train", "--help"],
    BASELINE: [sys.executable, "-c", "import tensorflow"],
}


def timed(name: str) -> float:
    """Seconds one command takes in a fresh process; stops the benchmark when it does not answer as expected."""
    start = time.perf_counter()
    answer = subprocess.run(COMMANDS[name], capture_output=True, text=True,
                            env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    seconds = time.perf_counter() - start
    expected = 2 if "(rejected)" in name else 0
    if answer.returncode != expected:
        raise SystemExit(f"{name}: exit status {answer.returncode}, expected {expected}:\n{answer.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    meta = metadata(args.repeats)
    timed(BASELINE)  # warm the file cache: the first import reads TensorFlow from disk
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name in COMMANDS:
            samples[name].append(timed(name))
    commands = {}
    for name, seconds in samples.items():
        ratios = [value / base for value, base in zip(seconds, samples[BASELINE])]
        commands[name] = {"seconds": spread(seconds), "samples": seconds,
                          "vs_import_tensorflow": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
                          "goal_met": statistics.median(seconds) < GOAL_SECONDS if name in WITH_GOAL else None}
    print(f"start-up, {args.repeats} interleaved rounds (goal < {GOAL_SECONDS} s; load {meta['load_1min_at_start']})")
    print("| command | median s | range | vs import tensorflow |\n|---|---|---|---|")
    for name, row in commands.items():
        print(f"| {name} | {row['seconds']['median']:.2f} | {row['seconds']['min']:.2f}..{row['seconds']['max']:.2f} "
              f"| {row['vs_import_tensorflow']:.2f}x |")
    write("startup", {"meta": meta, "goal_seconds": GOAL_SECONDS, "baseline": BASELINE, "commands": commands},
          args.out)


if __name__ == "__main__":
    main()
