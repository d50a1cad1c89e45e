"""What every benchmark JSON carries: the command, the machine, the date, the load, the repeats and the spread.

Each benchmark builds its result as `{"meta": metadata(repeats), ...}`, puts every figure it reports through
`spread()` (or keeps the raw samples beside it), and writes it with `write(name, result)` into `docs/<name>.json`,
where `benchmarks/render_docs.py` renders the docs from it. Standard library only: a benchmark imports this
before TensorFlow, and the docs are rendered without the project installed.

    meta = {"command": "python benchmarks/startup.py --repeats 5", "date": "2026-12-05", "time_utc": "07:20",
            "machine": {"cpu": "Intel(R) Xeon(R) Processor", "flags": ["amx_bf16", "avx512_bf16", "avx512f"],
                        "cores": 2},
            "load_1min_at_start": 1.12, "load_1min_at_end": 1.40, "repeats": 5,
            "commit": "b99735b", "uncommitted_changes": False}
"""
from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
# The flags that decide what `train.precision=auto` picks and how fast convolutions run on a CPU.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu() -> dict:
    """The processor: its model name, which of FLAGS it reports, and the cores this process may use."""
    model, flags = "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model, "flags": sorted(flags & set(FLAGS)), "cores": cores}


def load() -> float:
    """The 1-minute load average: near 0 on an idle machine, near the core count when another job fills it."""
    return round(os.getloadavg()[0], 2)


def commit() -> dict:
    """The checkout the benchmark ran from: its short commit and whether tracked files differed from it, so that a
    figure names the code (a recipe's YAML included) that produced it; empty outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=DOCS.parent, capture_output=True, text=True, check=True).stdout
    try:
        return {"commit": git("rev-parse", "--short", "HEAD").strip(),
                "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no").strip())}
    except (OSError, subprocess.CalledProcessError):
        return {}


def metadata(repeats: int, argv: list[str] | None = None) -> dict:
    """The common block, taken when the benchmark starts; `finish()` adds the load at the end."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    shown = f"benchmarks/{script.name}" if script.suffix == ".py" else str(script)
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"command": " ".join(["python", shown, *argv[1:]]), "date": now.date().isoformat(),
            "time_utc": now.strftime("%H:%M"), "machine": cpu(), "load_1min_at_start": load(), "repeats": repeats,
            **commit()}


def spread(values: list[float]) -> dict:
    """n, median, mean, sd (0 for one value), min and max of repeated measurements."""
    values = [float(value) for value in values]
    return {"n": len(values), "median": statistics.median(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}


def write(name: str, result: dict, folder: Path | None = None) -> Path:
    """Write `result` (whose "meta" came from `metadata()`) as `<folder>/<name>.json`; default folder `docs/`.

    The load at the end is taken now unless the meta already has it (a report written from earlier runs)."""
    result["meta"].setdefault("load_1min_at_end", load())
    path = (folder or DOCS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path
