"""Renders the benchmark figures into the docs from the JSON each benchmark wrote: `docs/benchmarks.md` (a section
per benchmark) and the README's summary table between its `<!-- benchmarks -->` markers. No figure is typed.

    python benchmarks/render_docs.py           # write them (`make docs`)
    python benchmarks/render_docs.py --check   # exit 1 when a doc differs from its JSON (`make docs-check`)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
BEGIN, END = "<!-- benchmarks: rendered by `make docs` from docs/*.json; do not edit -->", "<!-- /benchmarks -->"


def _load(name: str):
    path = DOCS / name
    return json.loads(path.read_text()) if path.is_file() else None


def _machine(result: dict) -> str:
    machine = result.get("machine") or result.get("cpu") or {}
    flags = ", ".join(machine.get("flags", [])) or "no AVX-512"
    return f"{machine.get('cpu') or machine.get('model', 'unknown CPU')} ({machine.get('cores', '?')} cores; {flags})"


def noise_section(result: dict) -> tuple[str, list[str]]:
    seeds, folds = result["val_image_iou"]["seeds"], result["val_image_iou"]["folds"]
    shifts, mdd, images = result["smallest_resolved_difference"], result["mdd"], result["images"]
    settings = result["settings"]
    text = f"""## Noise: seeds and folds (`benchmarks/noise.py`)

`{result['command']}` on {result['date']}, {_machine(result)}: the real images at {settings['size']} px, an
{settings['model.filters']}-filter U-Net, {settings['epochs']} epochs. The quantity is `compare`'s: each run's mean
per-image IoU of its kept checkpoint at threshold 0.5 (`val_image_iou`).

| | one split ({images['single_split_val']} val images), {len(seeds)} seeds | {len(folds)} folds ({images['out_of_fold']} out-of-fold images) |
| --- | --- | --- |
| val_image_iou of the runs | {', '.join(f'{v:.3f}' for v in seeds)} | {', '.join(f'{v:.3f}' for v in folds)} |
| sd across runs | {result['sd_across_seeds']:.3f} | {result['sd_across_folds']:.3f} |
| `mdd` (80 % power, p < 0.05) | {mdd['single_split']:.3f} | {mdd['five_fold_median']:.3f} (median of 50 resamples) |
| smallest shift the Wilcoxon test resolves | {shifts['single_split']:.3f} | {shifts['five_fold_median']:.3f} ({shifts['five_fold_range'][0]:.3f}-{shifts['five_fold_range'][1]:.3f} over 50 resamples) |

Per-image differences between two seeds on one split: sd {result['per_image_seed_difference_sd']:.3f}, median
{result['per_image_seed_difference_median']:+.3f}.
"""
    summary = [f"| noise: `mdd` on one split / {len(folds)} folds | {mdd['single_split']:.3f} / "
               f"{mdd['five_fold_median']:.3f} | [noise](docs/benchmarks.md#noise-seeds-and-folds-benchmarksnoisepy) |"]
    return text, summary


def gpu_section(result: dict) -> tuple[str, list[str]]:
    low, high = result["img_s_range"]
    memory = result.get("peak_memory_gib")
    text = f"""## The GPU check (`benchmarks/gpu_check.py`)

`{result['command']}` on {result['device']} (JAX {result['jax']}), host {_machine(result)}: the seed U-Net at
{result['image_size']} px, batch {result['batch']}, {result['precision']}, XLA.

| img/s (median of epochs 2..{result['epochs']}) | range | training GFLOP / image | TFLOP/s | of {result['peak_tflop_s']:.0f} TFLOP/s | compute-only img/s | peak memory |
| --- | --- | --- | --- | --- | --- | --- |
| {result['img_s_median_after_warmup']:.0f} | {low:.0f}-{high:.0f} | {result['training_gflop_per_image']:.1f} | {result['achieved_tflop_s']:.1f} | {result['fraction_of_peak']:.1%} | {result.get('compute_only_img_s') or 0:.0f} | {f'{memory:.1f} GiB' if memory else 'n/a'} |
"""
    summary = [f"| GPU check: seed U-Net, 256 px, bf16 | {result['img_s_median_after_warmup']:.0f} img/s on "
               f"{result['device']} | [GPU check](docs/benchmarks.md#the-gpu-check-benchmarksgpu_checkpy) |"]
    return text, summary


SECTIONS = {"noise.json": noise_section, "gpu_check.json": gpu_section}


def render() -> dict[Path, str]:
    """{path: the text it should hold}."""
    sections, summary = [], []
    for name, section in SECTIONS.items():
        result = _load(name)
        if result is None:
            continue
        text, rows = section(result)
        sections.append(text)
        summary += rows
    benchmarks = "# Benchmarks\n\nRendered by `make docs` from the JSON files in `docs/`; never edited by hand.\n\n" + \
        "\n".join(sections)
    table = "\n".join([BEGIN, "| benchmark | figure | details |", "| --- | --- | --- |", *summary, END])
    readme = (REPO / "README.md").read_text()
    if BEGIN in readme:
        readme = readme[:readme.index(BEGIN)] + table + readme[readme.index(END) + len(END):]
    return {DOCS / "benchmarks.md": benchmarks, REPO / "README.md": readme}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a doc differs from its JSON")
    args = parser.parse_args()
    stale = []
    for path, text in render().items():
        if path.is_file() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(REPO)))
        else:
            path.write_text(text)
    if stale:
        print(f"render_docs: out of date with docs/*.json: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
