"""Start-up: `python -m skinexp --help` and a rejected override must answer in under 1.5 s.

Neither path may import TensorFlow. Each command runs several times in a fresh process; the median
wall-clock time is reported beside the cost of importing TensorFlow, the baseline those paths avoid.

    python benchmarks/startup.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

GOAL_SECONDS = 1.5
COMMANDS = {
    "python -m skinexp --help": [sys.executable, "-m", "skinexp", "--help"],
    "python -m skinexp train model.filters=0 (rejected)": [sys.executable, "-m", "skinexp", "train", "model.filters=0"],
    "python -m skinexp train --help": [sys.executable, "-m", "skinexp", "train", "--help"],
    "baseline: python -c 'import tensorflow'": [sys.executable, "-c", "import tensorflow"],
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"start-up, median of {args.repeat} runs (goal < {GOAL_SECONDS} s)")
    print("| command | seconds | goal |\n|---|---|---|")
    baseline = None
    for name, command in COMMANDS.items():
        seconds = statistics.median(timed(command) for _ in range(args.repeat))
        if name.startswith("baseline"):
            baseline = seconds
            print(f"| {name} | {seconds:.2f} | - |")
        else:
            print(f"| {name} | {seconds:.2f} | {'met' if seconds < GOAL_SECONDS else 'MISSED'} |")
    print(f"(TensorFlow's import alone takes {baseline:.2f} s)")


if __name__ == "__main__":
    main()
