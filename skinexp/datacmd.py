"""`python -m skinexp data check|convert|synth [overrides]`: inspect, convert or generate datasets.

The overrides compose `conf/data.yaml` (a `dataset` group plus `output`, `format`, `overwrite`).
Nothing here imports TensorFlow, so `data check` answers in seconds.
"""
from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.cli import compose, fail, one_line
from skinexp.config import ConfigError, DatasetConfig, validate_dataset
from skinexp.data import DataError, Loaded, Split

USAGE = """usage: python -m skinexp data SUBCOMMAND [key=value ...]

subcommands:
  check     pairs per split, image sizes, foreground statistics and problems of a dataset
            e.g. data check dataset=folder dataset.root=DIR
  convert   write a dataset as the notebook's .npy files (data_train.npy, mask_train.npy, _val, _test)
            e.g. data convert dataset=folder dataset.root=DIR dataset.image_size=256 output=OUT
  synth     write the synthetic set as a folder (images/*.png, masks/*.png 0/255) or as .npy files
            e.g. data synth output=OUT format=folder dataset.num_samples=200 dataset.image_size=128

convert and synth refuse to replace existing files unless overwrite=true."""
FORMATS = ("folder", "npy")
NOTEBOOK_SPLITS = ("train", "val", "test")


@dataclass
class DataAppConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output: Optional[str] = None  # convert, synth: the directory to write
    format: str = "folder"  # synth: folder | npy
    overwrite: bool = False  # convert, synth: replace existing files


def data_command(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    subcommands = {"check": check, "convert": convert, "synth": synth}
    if not args or args[0] not in subcommands:
        fail(f"data needs a subcommand: {', '.join(subcommands)}. Received: {args[0] if args else 'nothing'}")
    subcommand, overrides = args[0], args[1:]
    cfg = _compose(subcommand, overrides)
    try:
        subcommands[subcommand](cfg)
    except DataError as error:
        fail(str(error))
    return 0


def _compose(subcommand: str, overrides: list[str]):
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="data_schema", node=DataAppConfig)
    try:
        cfg = compose("data", overrides)
        validate_dataset(cfg)
        if cfg.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}. Received: format={cfg.format}")
        if subcommand != "check" and not cfg.output:
            raise ConfigError(f"data {subcommand} needs output=DIR, the directory to write. Received: output=None")
    except ConfigError as error:
        fail(str(error))
    except Exception as error:  # Hydra and OmegaConf composition errors
        fail(one_line(error))
    return cfg


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
        fail(f"{len(loaded.problems)} problem(s); the first: {loaded.problems[0]}")


def report(loaded: Loaded, dataset_cfg) -> list[str]:
    """The lines `data check` prints."""
    from skinexp.data.sources import assemble

    where = f" root={dataset_cfg.root}" if dataset_cfg.name != "synthetic" else ""
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


def _refuse_existing(paths: list[Path], output: Path, overwrite: bool) -> None:
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists; pass overwrite=true to replace it. "
                        f"Received: {len(existing)} existing file(s) in output={output}")


def write_npy(splits: dict[str, Split], output: Path, overwrite: bool) -> list[Path]:
    """The notebook's files: `data_<split>.npy` `(N, S, S, 3)` uint8 and `mask_<split>.npy` `(N, S, S)` uint8
    0/255 (what notebooks that divide by 255 or by the maximum both read), written in chunks."""
    every_name = [output / f"{kind}_{split}.npy" for split in NOTEBOOK_SPLITS for kind in ("data", "mask")]
    _refuse_existing(every_name, output, overwrite)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for split, data in splits.items():
        images_path, masks_path = output / f"data_{split}.npy", output / f"mask_{split}.npy"
        images = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=data.images.shape)
        masks = np.lib.format.open_memmap(masks_path, mode="w+", dtype=np.uint8, shape=data.masks.shape[:3])
        for start in range(0, len(data), 256):
            part = slice(start, start + 256)
            images[part] = data.images[part]
            masks[part] = np.asarray(data.masks[part])[..., 0] * np.uint8(255)
        images.flush()
        masks.flush()
        del images, masks
        written += [images_path, masks_path]
    for stale in set(every_name) - set(written):  # a split this set lacks must not linger from an older one
        stale.unlink(missing_ok=True)
    return written


def convert(cfg) -> None:
    """Load the configured dataset as training would (resized, binarised, split) and write the notebook's files."""
    from skinexp.data import load_splits

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

    images, masks = make_synthetic(cfg.dataset.num_samples, cfg.dataset.image_size, cfg.dataset.seed)
    ids = [f"synthetic_{i:05d}" for i in range(len(images))]
    output = Path(cfg.output)
    if cfg.format == "npy":
        written = write_npy({"train": Split(images, masks, ids)}, output, cfg.overwrite)
        print(f"wrote {', '.join(str(path) for path in written)} ({len(images)} images; val is held out on load)")
        return
    write_folder(Split(images, masks, ids), output, cfg.overwrite)
    print(f"wrote {len(images)} images to {output / 'images'} and their masks to {output / 'masks'}")


def write_folder(data: Split, output: Path, overwrite: bool) -> None:
    """`images/<id>.png` RGB and `masks/<id>.png` 8-bit 0/255; with overwrite, older `synthetic_*` files go."""
    from PIL import Image

    targets = [output / kind / f"{name}.png" for name in data.ids for kind in ("images", "masks")]
    _refuse_existing(sorted(path for kind in ("images", "masks") if (output / kind).is_dir()
                            for path in (output / kind).iterdir()), output, overwrite)
    for kind in ("images", "masks"):
        (output / kind).mkdir(parents=True, exist_ok=True)
        for stale in set((output / kind).glob("synthetic_*.png")) - set(targets):
            stale.unlink()

    def save(index: int) -> None:
        name = data.ids[index]
        Image.fromarray(np.asarray(data.images[index])).save(output / "images" / f"{name}.png")
        Image.fromarray(np.asarray(data.masks[index])[..., 0] * np.uint8(255)).save(output / "masks" / f"{name}.png")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(save, range(len(data))))
