"""Data sources and input pipelines.

Every source yields the same contract (`skinexp.data.types`): images `(N, H, W, 3)` uint8 0..255 and masks
`(N, H, W, 1)` uint8 in {0, 1}, H = W = `dataset.image_size`, with one string id per image. `load_splits`
(`skinexp.data.sources`) loads the configured source and holds out validation and test images.
"""
from skinexp.data.sources import load_splits
from skinexp.data.types import DataSplits, Loaded, Split

__all__ = ["DataSplits", "Loaded", "Split", "load_splits"]
