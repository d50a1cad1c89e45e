"""`python -m skinexp compare`: configs compared across sweeps or an experiment on one per-image score, as a table
with intervals, paired differences and verdicts (`skinexp.comparison.table`), an HTML report
(`skinexp.comparison.report`), logged to MLflow."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.cli.options import parse_options, usage, wants_help
from skinexp.comparison.leaderboard import leaderboard, leaderboard_markdown
from skinexp.comparison.table import (
    PER_IMAGE_FILES,
    Comparison,
    compare,
    comparison_markdown,
    parse_per_image,
    score_name,
    threshold_name,
)
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError, PermissionRefused
from skinexp.outputs import refuse_existing


@dataclass
class CompareOptions:
    sweep: str = ""  # sweep ids or names, comma-separated
    experiment: str = ""
    metric: str = "iou"
    threshold: str = "0.5"  # or tuned
    baseline: str = ""
    group_by: str = ""  # keys, comma-separated
    report: str = ""
    overwrite: bool = False  # replace the files of an earlier report in report=
    uri: str = DEFAULT_TRACKING.uri
MASK_FILES = {"0.5": "data/val_masks.npz", "tuned": "data/val_masks_tuned.npz"}


def _masks(data: Optional[bytes]) -> dict[str, np.ndarray]:
    """{image id: (S, S, 1) uint8 mask} from a run's `data/val_masks.npz`."""
    if not data:
        return {}
    import io

    with np.load(io.BytesIO(data)) as packed:
        shape = tuple(packed["shape"])
        masks = np.unpackbits(packed["masks"])[: int(np.prod(shape))].reshape(shape)
        return dict(zip(packed["ids"].tolist(), masks))


def _pixels(run, size: int) -> Optional[dict[str, tuple]]:
    """{image id: (image, truth)} of the whole dataset the run trained on, at `size`; None if unreadable."""
    from omegaconf import OmegaConf

    from skinexp import tracking
    from skinexp.config.schema import DatasetConfig
    from skinexp.data.sources import load_source

    try:
        with tempfile.TemporaryDirectory(prefix="skinexp-compare-") as scratch:
            config = tracking.run_config(run.info.run_id, Path(scratch))
        dataset = OmegaConf.merge(OmegaConf.structured(DatasetConfig), config["dataset"])
        dataset.image_size = size
        loaded = load_source(dataset)
    except Exception:  # a missing dataset, config or artifact: a report without pictures, not a failure
        return None
    return {image_id: (np.asarray(split.images[i]), np.asarray(split.masks[i]))
            for split in loaded.splits.values() for i, image_id in enumerate(split.ids)}


def report_inputs(comparison: Comparison):
    """(val_iou histories by run, dataset pixels, each group's predicted masks by image at the comparison's
    threshold) for the report."""
    from skinexp import tracking

    histories, masks = {}, {}
    for group in comparison.groups:
        masks[group.name] = {}
        for run in group.runs:
            histories[run.info.run_id] = tracking.metric_histories(run.info.run_id, ["val_iou"]).get("val_iou", [])
            mask_file = MASK_FILES[comparison.threshold]
            for image_id, mask in _masks(tracking.artifact_bytes(run.info.run_id, mask_file)).items():
                masks[group.name].setdefault(image_id, mask)
    first = comparison.groups[0].runs[0]
    size = next((next(iter(m.values())).shape[0] for m in masks.values() if m), 0)
    pixels = _pixels(first, size) if size else None
    return histories, pixels, masks


def compare_runs(runs: list, metric: str, group_by: Optional[list[str]], directory: Path, title: str,
                 overwrite: bool = False, threshold: str = "0.5",
                 baseline: Optional[str] = None) -> tuple[Comparison, list[Path]]:
    """The comparison of `runs` and its files (report.html, comparison.csv, comparison.md) in `directory`."""
    from skinexp import tracking
    from skinexp.comparison import report

    score, threshold = score_name(metric), threshold_name(threshold)
    per_image = {run.info.run_id: parse_per_image(tracking.artifact_bytes(run.info.run_id, PER_IMAGE_FILES[threshold]),
                                                  score)
                 for run in runs if run.info.status == "FINISHED"}
    comparison = compare(runs, score, group_by, per_image, threshold, baseline)
    refuse_existing([directory / name for name in report.FILES], directory, overwrite, key="report")
    return comparison, report.write(directory, comparison, title, *report_inputs(comparison))


def default_report_dir(base_dir: Path) -> Path:
    """`runs/compare/<date>/<time>-<pid>`, with `-2`, `-3`, ... when that folder exists already."""
    folder = base_dir / "runs" / "compare" / time.strftime("%Y-%m-%d")
    name = f"{time.strftime('%H-%M-%S')}-{os.getpid()}"
    candidate, count = folder / name, 1
    while candidate.exists():
        count += 1
        candidate = folder / f"{name}-{count}"
    return candidate


def compare_command(args: list[str]) -> int:
    """`python -m skinexp compare [sweep=ID|NAME[,...]] [experiment=NAME] [group_by=KEY,...] [metric=iou]
    [threshold=0.5|tuned] [baseline=GROUP] [report=DIR] [uri=...]`: the latest sweep when neither sweep= nor
    experiment= is given."""
    from skinexp import tracking

    if wants_help(args):
        print(usage("compare", CompareOptions))
        return 0
    options = parse_options("compare", args, CompareOptions)
    tracking.open_store_uri(options.uri, Path.cwd(), "uri")
    experiment = options.experiment or DEFAULT_TRACKING.experiment
    metric, group_by = score_name(options.metric), [k for k in options.group_by.split(",") if k] or None
    threshold = threshold_name(options.threshold)
    if options.sweep or not options.experiment:
        sweeps = [s for s in options.sweep.split(",") if s] or [None]
        parents, runs = tracking.sweep_runs(experiment, sweeps)
        title = ", ".join(parent.info.run_name for parent in parents)
    else:
        parents, runs = [], tracking.experiment_runs(experiment)
        title = f"experiment {experiment}"
    if len(parents) == 1:
        _print_leaderboard(parents[0], runs, metric)
    directory = Path(options.report) if options.report else default_report_dir(Path.cwd())
    comparison, files = compare_runs(runs, metric, group_by, directory, title, overwrite=options.overwrite,
                                     threshold=threshold, baseline=options.baseline or None)
    print(f"{title}: {len(comparison.groups)} groups of {sum(len(g.runs) for g in comparison.groups)} FINISHED "
          f"runs, ranked by mean per-image {metric} at threshold {threshold}, against {comparison.reference}\n\n"
          f"{comparison_markdown(comparison)}")
    try:
        where = _log_comparison(parents, runs, comparison, directory, title)
    except PermissionRefused as refusal:  # a READ-only user compares; the report stays on their disk
        where = "nowhere in MLflow"
        print(f"skinexp: warning: the comparison is not logged to MLflow: {refusal}", file=sys.stderr)
    print(f"skinexp: report {files[0]}; logged to {where}")
    return 0


def _log_comparison(parents: list, runs: list, comparison: Comparison, directory: Path, title: str) -> str:
    """Log the report to the sweep's parent (one sweep), else to a new comparison run; says where."""
    from skinexp import tracking

    if len(parents) == 1:
        tracking.log_files(parents[0].info.run_id, directory, "comparison")
        where = f"the sweep's parent run {parents[0].info.run_id}"
    else:
        experiment_id = (parents[0] if parents else runs[0]).info.experiment_id if (parents or runs) else None
        run_id = tracking.start_comparison_run(experiment_id, f"compare {title}"[:250],
                                               [run.info.run_id for g in comparison.groups for run in g.runs])
        tracking.log_files(run_id, directory, "comparison")
        tracking.end_run(run_id)
        where = f"comparison run {run_id}"
    return where


def _print_leaderboard(parent, runs: list, metric: str) -> None:
    table = leaderboard(runs, metric)
    finished = sum(row["status"] == "FINISHED" for row in table)
    print(f"sweep {parent.info.run_name} ({parent.info.run_id}, {parent.info.status}): {len(table)} jobs, "
          f"{finished} finished, {len(table) - finished} failed; ranked by mean per-image {metric} at threshold "
          f"0.5\n")
    print(leaderboard_markdown(table) + "\n")


def compare_sweep(parent_run_id: str, directory: Path) -> Optional[Path]:
    """At a sweep's end: its comparison and report into `directory`, logged to the parent; None without a
    FINISHED job."""
    from skinexp import tracking

    runs = tracking.child_runs(parent_run_id)
    if not any(run.info.status == "FINISHED" for run in runs):
        return None
    try:
        parent = tracking.get_run(parent_run_id)
        _, files = compare_runs(runs, "iou", None, directory, parent.info.run_name if parent else parent_run_id)
    except ConfigError:
        return None
    try:
        tracking.log_files(parent_run_id, directory, "comparison")
    except PermissionRefused:
        return files[0]
    return files[0]
