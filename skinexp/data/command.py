"""`python -m skinexp data check|convert|synth [overrides]`: inspect, convert or generate datasets.

The overrides compose `conf/data.yaml` (a `dataset` group plus `output`, `format`, `overwrite`).
Nothing here imports TensorFlow, so `data check` answers in seconds.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from skinexp.config.checks import check_data_command
from skinexp.config.compose import compose
from skinexp.config.schema import DataFormat, DatasetName
from skinexp.data.types import Loaded, Split
from skinexp.errors import ConfigError, DataError

USAGE = """usage: python -m skinexp data SUBCOMMAND [key=value ...]

subcommands:
  check     pairs per split, image sizes, foreground statistics and problems of a dataset
            e.g. data check dataset=folder dataset.root=DIR
  convert   write a dataset as the notebook's .npy files (data_train.npy, mask_train.npy, _val, _test)
            e.g. data convert dataset=folder dataset.root=DIR dataset.image_size=256 output=OUT
  synth     write the synthetic set as a folder (images/*.png, masks/*.png 0/255) or as .npy files
            e.g. data synth output=OUT format=folder dataset.num_samples=200 dataset.image_size=128

convert and synth refuse to replace existing files unless overwrite=true."""
SUBCOMMANDS = ("check", "convert", "synth")


def data_command(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if not args or args[0] not in SUBCOMMANDS:
        raise ConfigError(f"data needs a subcommand: {', '.join(SUBCOMMANDS)}. "
                          f"Received: {args[0] if args else 'nothing'}")
    subcommand, overrides = args[0], args[1:]
    cfg = compose("data", overrides)
    check_data_command(cfg, subcommand)
    {"check": check, "convert": convert, "synth": synth}[subcommand](cfg)
    return 0


def check(cfg) -> None:
    """Print what the dataset holds and every problem found; exit status 2 when there are problems."""
    from skinexp.data.sources import load_source, require_foreground

    loaded = load_source(cfg.dataset, strict=False)
    try:
        require_foreground(loaded, cfg.dataset)
    except DataError as error:
        loaded.problems.append(str(error))
    for line in report(loaded, cfg.dataset):
        print(line)
    if loaded.problems:
        raise DataError(f"{len(loaded.problems)} problem(s); the first: {loaded.problems[0]}")


def report(loaded: Loaded, dataset_cfg) -> list[str]:
    """The lines `data check` prints."""
    from skinexp.data.sources import assemble

    where = f" root={dataset_cfg.root}" if dataset_cfg.name != DatasetName.synthetic else ""
    lines = [f"dataset={dataset_cfg.name}{where} image_size={dataset_cfg.image_size}"]
    found = ", ".join(f"{split} {len(data)}" for split, data in loaded.splits.items())
    # The holdout on index arrays: split counts without copying any pixels.
    index_only = {name: Split(np.arange(len(data)), np.arange(len(data)), data.ids)
                  for name, data in loaded.splits.items()}
    used = found
    if "train" in index_only and len(index_only["train"]) >= 2:
        final = assemble(index_only["train"], dataset_cfg, val=index_only.get("val"), test=index_only.get("test"))
        used = ", ".join(f"{name} {len(data)}" for name, data in
                         (("train", final.train), ("val", final.val), ("test", final.test)) if data is not None)
    if used == found:
        lines.append(f"pairs: {found}")
    else:
        lines.append(f"pairs: {found} -> used as {used} (dataset.val_split={dataset_cfg.val_split}, "
                     f"dataset.test_split={dataset_cfg.test_split}, dataset.seed={dataset_cfg.seed})")
    if loaded.sizes:
        by_area = sorted(set(loaded.sizes), key=lambda size: (size[0] * size[1], size))
        (common, times), = Counter(loaded.sizes).most_common(1)
        lines.append(f"image sizes (width x height): min {_wh(by_area[0])}, max {_wh(by_area[-1])}, "
                     f"most common {_wh(common)} ({times} of {len(loaded.sizes)})")
    fractions = np.concatenate(list(loaded.foreground.values())) if loaded.foreground else np.zeros(0)
    if fractions.size:
        lines.append(f"foreground fraction: mean {fractions.mean():.3f}, min {fractions.min():.3f}, "
                     f"max {fractions.max():.3f}; empty masks: {int((fractions == 0).sum())}")
    lines += [f"warning: {warning}" for warning in loaded.warnings]
    lines += [f"problem: {problem}" for problem in loaded.problems] or ["problems: none"]
    return lines


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def convert(cfg) -> None:
    """Load the configured dataset as training would (resized, binarised, split) and write the notebook's files."""
    from skinexp.data.sources import load_splits
    from skinexp.data.writers import write_npy
    from skinexp.outputs import refuse_input_as_output

    if cfg.dataset.name != DatasetName.synthetic and cfg.dataset.root:
        refuse_input_as_output(Path(cfg.dataset.root), Path(cfg.output), source_key="dataset.root")
    splits = load_splits(cfg.dataset)
    for warning in splits.warnings:
        print(f"skinexp: warning: {warning}", file=sys.stderr)
    named = {"train": splits.train, "val": splits.val}
    if splits.test is not None:
        named["test"] = splits.test
    written = write_npy(named, Path(cfg.output), cfg.overwrite)
    print(f"wrote {', '.join(str(path) for path in written)} "
          f"({', '.join(f'{name} {len(data)}' for name, data in named.items())})")


def synth(cfg) -> None:
    """The synthetic set (`dataset.num_samples`, `dataset.image_size`, `dataset.seed`) as a folder or .npy files."""
    from skinexp.data.synthetic import make_synthetic
    from skinexp.data.writers import write_folder, write_npy

    images, masks = make_synthetic(cfg.dataset.num_samples, cfg.dataset.image_size, cfg.dataset.seed)
    ids = [f"synthetic_{i:05d}" for i in range(len(images))]
    output = Path(cfg.output)
    if cfg.format == DataFormat.npy:
        written = write_npy({"train": Split(images, masks, ids)}, output, cfg.overwrite)
        print(f"wrote {', '.join(str(path) for path in written)} ({len(images)} images; val is held out on load)")
        return
    write_folder(Split(images, masks, ids), output, cfg.overwrite)
    print(f"wrote {len(images)} images to {output / 'images'} and their masks to {output / 'masks'}")
